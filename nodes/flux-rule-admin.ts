/**
 * Editor endpoints the `flux rule` dialog uses (under /editor, Node-RED's admin auth): the
 * registry's rules, and a test run of a registry rule or of the inline script on a sample message
 * (no side effects, like POST /api/rules/test). Registered once per Node-RED runtime.
 */
import express from 'express';
import { z } from 'zod';
import type { NodeAPI } from './red.ts';
import { fluxOf } from './red.ts';
import { isFluxError } from '../runtime/errors/index.ts';

const registered = new WeakSet<object>();

const testBody = z
  .object({
    rule_id: z.string().min(1).max(64).optional(),
    script: z.string().min(1).max(200_000).optional(),
    env: z.record(z.string(), z.unknown()).optional(),
    msg: z.object({ device_id: z.string().min(1).max(64), values: z.record(z.string(), z.unknown()), ts: z.number().optional() }),
  })
  .strict()
  .refine((b) => !!b.rule_id !== !!b.script, 'give rule_id or script');

export function registerRuleAdmin(RED: NodeAPI): void {
  if (registered.has(RED.httpAdmin)) return;
  registered.add(RED.httpAdmin);
  const engine = () => fluxOf(RED).rules;
  const fail = (res: express.Response, err: unknown) => {
    if (isFluxError(err)) return void res.status(err.status).json({ error: { code: err.code, message: err.message } });
    res.status(500).json({ error: { code: 'internal', message: 'internal error (see the server log)' } });
  };
  RED.httpAdmin.get('/flux-rules', RED.auth.needsPermission('flux-rules.read'), async (_req: express.Request, res: express.Response) => {
    try {
      const rules = await engine().list({});
      res.json(rules.map((r) => ({ id: r.id, name: r.name, enabled: r.enabled, action_type: r.action_type, product_id: r.product_id, device_id: r.device_id, triggers: r.stats.triggers, errors: r.stats.errors, compile_error: r.compile_error })));
    } catch (err) {
      fail(res, err);
    }
  });
  RED.httpAdmin.post('/flux-rules/test', RED.auth.needsPermission('flux-rules.read'), express.json({ limit: '256kb' }), async (req: express.Request, res: express.Response) => {
    const body = testBody.safeParse(req.body);
    if (!body.success) return void res.status(400).json({ error: { code: 'bad_request', message: body.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ') } });
    try {
      const b = body.data;
      res.json(b.rule_id ? await engine().test(b.rule_id, b.msg) : await engine().testScript(b.script!, b.msg, b.env));
    } catch (err) {
      fail(res, err);
    }
  });
}
