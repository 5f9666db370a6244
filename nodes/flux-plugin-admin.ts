/**
 * Editor endpoints the `flux decode` / `flux encode` dialogs use (under /editor, Node-RED's admin
 * auth): list the plugins, and upload a dropped `.wasm` (validated and installed like
 * `PUT /api/plugins/{id}`). Registered once per Node-RED runtime, whichever node loads first.
 */
import express from 'express';
import type { NodeAPI } from './red.ts';
import { fluxOf } from './red.ts';
import { isFluxError } from '../runtime/errors/index.ts';

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
