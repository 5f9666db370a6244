/**
 * /api/plugins (docs/api.md): install or hot-swap with `PUT` (`application/wasm`), list and read
 * versions, roll back, delete, change limits, and try decode/encode on the active version or on a
 * candidate module (`wasm_base64`) before installing it.
 */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import type { PluginHost } from '../plugins/index.ts';
import { badRequest } from '../errors/index.ts';
import { q, type RouteTable } from './routes.ts';
import { pluginId } from './schemas.ts';

const idOnly = z.object({ id: pluginId });
const limits = { deadline_ms: q.int(1, 10_000).optional(), memory_mib: q.int(1, 4096).optional() };
const base64 = z.string().max(1_400_000).regex(/^[A-Za-z0-9+/=\s_-]*$/, 'must be base64');
const candidate = { wasm_base64: base64.optional().describe('a candidate module to run instead of the installed one (not installed)') };

function bytesOf(body: { hex?: string; base64?: string }): Buffer {
  if (body.hex !== undefined) return Buffer.from(body.hex.replace(/[\s:]/g, ''), 'hex');
  return Buffer.from(body.base64!, 'base64');
}

export function pluginRoutes(_ctx: FluxContext, routes: RouteTable, plugins: PluginHost): void {
  const host = () => plugins;
  routes
    .add({
      method: 'get', path: '/plugins', tag: 'plugins', role: 'viewer', summary: 'List plugins with their versions and the active one',
      handler: async () => ({ items: await host().list(), defaults: host().defaults }),
    })
    .add({
      method: 'get', path: '/plugins/:id', tag: 'plugins', role: 'viewer', summary: 'Read a plugin: every version (sha256, time, source), the active one, its meta and limits', params: idOnly, errors: [404],
      handler: ({ params }) => host().get(params.id),
    })
    .add({
      method: 'put', path: '/plugins/:id', tag: 'plugins', role: 'operator',
      summary: 'Install or hot-swap plugin {id} (body: the .wasm); validated first, kept as a new version, activated atomically (`activate=false`: kept, not activated, for replay and shadow mode). 201 for a new version, 200 when these bytes were already a version',
      params: idOnly, query: z.object({ ...limits, activate: q.bool().optional().describe('false: keep the version without activating it (for replay, shadow mode, a later promote)') }), rawBody: { contentTypes: ['application/wasm', 'application/octet-stream'], limit: '32mb' }, status: 201,
      returns: 'the version', errors: [413],
      handler: async ({ params, query, body, res }) => {
        const { activate, ...limitsIn } = query;
        const { version, created } = await host().install(params.id, body as unknown as Buffer, 'api', limitsIn, { activate });
        res.status(created ? 201 : 200).json(version);
        return res;
      },
    })
    .add({
      method: 'patch', path: '/plugins/:id', tag: 'plugins', role: 'operator', summary: "Change the active version's limits (per-call deadline, memory cap)", params: idOnly, errors: [404],
      body: z.object({ deadline_ms: z.number().int().min(1).max(10_000).optional(), memory_mib: z.number().int().min(1).max(4096).optional() }).strict().refine((b) => Object.keys(b).length > 0, 'nothing to update'),
      handler: ({ params, body }) => host().setLimits(params.id, body),
    })
    .add({
      method: 'delete', path: '/plugins/:id', tag: 'plugins', role: 'operator', summary: 'Unload a plugin and delete all its versions (409 while its file is in FLUX_PLUGINS_DIR)', params: idOnly, status: 204, errors: [404, 409],
      handler: async ({ params }) => {
        await host().remove(params.id);
      },
    })
    .add({
      method: 'post', path: '/plugins/:id/rollback', tag: 'plugins', role: 'operator', summary: 'Return to the version before the active one', params: idOnly, errors: [404, 409],
      returns: 'the version now active',
      handler: ({ params }) => host().rollback(params.id),
    })
    .add({
      method: 'post', path: '/plugins/:id/decode', tag: 'plugins', role: 'operator',
      summary: 'Try a decoder on sample bytes (`hex` or `base64`), on the active version or on a candidate `wasm_base64`; answers the output, the plugin logs and the time; touches no device',
      params: idOnly, errors: [404],
      body: z.object({ hex: z.string().max(200_000).regex(/^[0-9a-fA-F\s:]*$/, 'must be hex').optional(), base64: base64.optional(), ...candidate }).strict()
        .refine((b) => (b.hex === undefined) !== (b.base64 === undefined), 'give exactly one of hex or base64')
        .refine((b) => b.hex === undefined || b.hex.replace(/[\s:]/g, '').length % 2 === 0, 'hex has an odd number of digits'),
      returns: '`{ ok, output | error, logs, time_ms, plugin: { id, version, sha256 } }`',
      handler: ({ params, body }) => host().tryCall(params.id, 'decode', bytesOf(body), body.wasm_base64 ? Buffer.from(body.wasm_base64, 'base64') : undefined),
    })
    .add({
      method: 'post', path: '/plugins/:id/encode', tag: 'plugins', role: 'operator',
      summary: 'Try an encoder on a command, on the active version or on a candidate `wasm_base64`; answers the bytes (hex, base64), the plugin logs and the time',
      params: idOnly, errors: [404],
      body: z.object({ command: z.string().min(1).max(200), params: z.record(z.string(), z.unknown()).optional(), ...candidate }).strict(),
      returns: '`{ ok, output: { hex, base64 } | error, logs, time_ms, plugin }`',
      handler: ({ params, body }) => {
        const input = Buffer.from(JSON.stringify({ command: body.command, params: body.params ?? {} }));
        if (body.wasm_base64 !== undefined && body.wasm_base64.length === 0) throw badRequest('wasm_base64 is empty');
        return host().tryCall(params.id, 'encode', input, body.wasm_base64 ? Buffer.from(body.wasm_base64, 'base64') : undefined);
      },
    });
}
