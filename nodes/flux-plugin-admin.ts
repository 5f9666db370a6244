/**
 * Editor endpoints the `flux decode` / `flux encode` dialogs use (under /editor, Node-RED's admin
 * auth): list the plugins, upload a dropped `.wasm` (validated and installed like
 * `PUT /api/plugins/{id}`), and for `flux decode` a plugin's versions with its shadow's counters
 * and a replay (as `/api/plugins/{id}/shadow` and `/replay`, runtime/plugin-compare).
 * Registered once per Node-RED runtime, whichever node loads first.
 */
import express from 'express';
import type { NodeAPI } from './red.ts';
import { fluxOf } from './red.ts';
import { badRequest, isFluxError } from '../runtime/errors/index.ts';
import { replayBody } from '../runtime/plugin-compare/index.ts';
import { formatZodError } from '../runtime/api/index.ts';

const registered = new WeakSet<object>();

export function registerPluginAdmin(RED: NodeAPI): void {
  if (registered.has(RED.httpAdmin)) return;
  registered.add(RED.httpAdmin);
  const host = () => fluxOf(RED).plugins;
  const fail = (res: express.Response, err: unknown) => {
    if (isFluxError(err)) return void res.status(err.status).json({ error: { code: err.code, message: err.message } });
    res.status(500).json({ error: { code: 'internal', message: (err as Error).message } });
  };
  RED.httpAdmin.get('/flux-plugins', RED.auth.needsPermission('flux-plugins.read'), async (_req: express.Request, res: express.Response) => {
    try {
      const items = await host().list();
      res.json(
        items.map((p) => ({
          id: p.id,
          active_version: p.active_version,
          sha256: p.versions.find((v) => v.active)?.sha256 ?? null,
          name: p.meta?.name,
          protocol: p.meta?.protocol,
          versions: p.versions.length,
        })),
      );
    } catch (err) {
      fail(res, err);
    }
  });
  const compare = () => {
    const c = fluxOf(RED).pluginCompare;
    if (!c) throw new Error('replay and shadow mode are not running in this process');
    return c;
  };
  RED.httpAdmin.get('/flux-plugins/:id/compare', RED.auth.needsPermission('flux-plugins.read'), async (req: express.Request, res: express.Response) => {
    try {
      const id = String(req.params.id);
      const info = await host().get(id);
      const c = compare();
      let shadow = null;
      try {
        shadow = c.shadows.status(id);
      } catch {
        // no shadow version
      }
      res.json({ id, active_version: info.active_version, versions: info.versions.map((v) => ({ version: v.version, active: v.active, created_at: v.created_at })), shadow, replay: c.replays.status(id) ?? null });
    } catch (err) {
      fail(res, err);
    }
  });
  RED.httpAdmin.post(
    '/flux-plugins/:id/replay',
    RED.auth.needsPermission('flux-plugins.write'),
    express.json({ limit: '64kb' }),
    async (req: express.Request, res: express.Response) => {
      try {
        const body = replayBody.safeParse(req.body ?? {});
        if (!body.success) throw badRequest(formatZodError(body.error, 'body'));
        const { done } = await compare().replays.start(String(req.params.id), body.data);
        res.json(await done);
      } catch (err) {
        fail(res, err);
      }
    },
  );
  RED.httpAdmin.put(
    '/flux-plugins/:id',
    RED.auth.needsPermission('flux-plugins.write'),
    express.raw({ type: ['application/wasm', 'application/octet-stream'], limit: '32mb' }),
    async (req: express.Request, res: express.Response) => {
      try {
        if (!Buffer.isBuffer(req.body)) return void res.status(400).json({ error: { code: 'bad_request', message: 'send the .wasm with Content-Type application/wasm' } });
        const { version, created } = await host().install(String(req.params.id), req.body, 'api');
        res.status(created ? 201 : 200).json(version);
      } catch (err) {
        fail(res, err);
      }
    },
  );
}
