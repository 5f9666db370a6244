/** /api/devices/{id}/trace and /api/trace/{msgId}: what happened to a message, stage by stage. */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import { notFound } from '../errors/index.ts';
import { q, type RouteTable } from './routes.ts';
import { idParam } from './schemas.ts';
import type { TraceLookup } from '../trace/index.ts';

/** `traces`: this node's, or in a cluster every node's (runtime/cluster/traces.ts). */
export function traceRoutes(ctx: FluxContext, routes: RouteTable, traces: TraceLookup): void {
  routes
    .add({
      method: 'get', path: '/devices/:id/trace', tag: 'trace', role: 'viewer', summary: "The device's newest message traces (newest first)", params: idParam, errors: [404],
      query: z.object({ last: q.int(1, 100).optional() }),
      returns: '`{ items: [{ id, device_id, received_at, spans: [{ stage, at, took_ms, ok, detail, error }] }] }`',
      handler: async ({ params, query }) => {
        await ctx.registry.devices.get(params.id);
        return { items: await traces.byDevice(params.id, query.last ?? 10) };
      },
    })
    .add({
      method: 'get', path: '/trace/:msgId', tag: 'trace', role: 'viewer', summary: 'One message trace by its id (`uplink.id` / `msg._msgid`)', errors: [404],
      params: z.object({ msgId: z.string().min(1).max(100) }),
      handler: async ({ params }) => {
        const t = await traces.get(params.msgId);
        if (!t) throw notFound('trace', params.msgId);
        return t;
      },
    });
}
