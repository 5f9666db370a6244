/** /api/rules: CRUD, test runs on a sample message (POST /api/rules/{id}/test), per-rule counters in each rule. */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import type { RouteTable } from './routes.ts';
import { q } from './routes.ts';
import { idParam, page } from './schemas.ts';
import { ruleCreate, rulePatch, type RuleEngine } from '../rules/index.ts';

const sample = z
  .object({
    device_id: z.string().min(1).max(64),
    values: z.record(z.string(), z.unknown()).default({}),
    ts: z.number().optional(),
  })
  .loose();
const testBody = z.object({ msg: sample, device: z.object({ id: z.string(), product_id: z.string().optional(), product_key: z.string().optional() }).optional() }).strict();

export function ruleRoutes(_ctx: FluxContext, routes: RouteTable, engine: RuleEngine): void {
  routes
    .add({
      method: 'post', path: '/rules', tag: 'rules', role: 'operator', summary: 'Create a rule; a script with a syntax error is refused (400, with line and column)', body: ruleCreate, status: 201, errors: [404],
      returns: 'the rule with its counters',
      handler: ({ body }) => engine.create(body),
    })
    .add({
      method: 'get', path: '/rules', tag: 'rules', role: 'viewer', summary: 'List rules with their counters (filter by enabled, product, device; paginated)',
      query: z.object({ enabled: q.bool().optional(), product_id: z.string().max(64).optional(), device_id: z.string().max(64).optional(), ...page }),
      returns: '`{ items, total, limit, offset, has_more }`',
      handler: async ({ query: { limit = 100, offset = 0, ...filter } }) => {
        const all = await engine.list(filter);
        const items = all.slice(offset, offset + limit);
        return { items, total: all.length, limit, offset, has_more: offset + items.length < all.length };
      },
    })
    .add({
      method: 'post', path: '/rules/test', tag: 'rules', role: 'operator', summary: 'Run an unsaved script on a sample message, without side effects',
      body: z.object({ trigger_script: z.string().min(1).max(200_000), env: z.record(z.string(), z.unknown()).optional(), msg: sample }).strict(),
      returns: '`{ result, triggered, logs, commands, alarms, micros }` or `{ error, logs, … }`',
      handler: ({ body }) => engine.testScript(body.trigger_script, body.msg, body.env),
    })
    .add({
      method: 'get', path: '/rules/:id', tag: 'rules', role: 'viewer', summary: 'Read a rule with its counters (runs, triggers, errors, last error, mean/p99 run time, action failures)', params: idParam, errors: [404],
      handler: ({ params }) => engine.get(params.id),
    })
    .add({
      method: 'patch', path: '/rules/:id', tag: 'rules', role: 'operator', summary: 'Update a rule; takes effect for the next message', params: idParam, errors: [404],
      body: rulePatch.refine((b) => Object.keys(b).length > 0, 'nothing to update'),
      handler: ({ params, body }) => engine.update(params.id, body),
    })
    .add({
      method: 'put', path: '/rules/:id', tag: 'rules', role: 'operator', summary: 'Replace a rule; takes effect for the next message', params: idParam, errors: [404], body: ruleCreate,
      handler: ({ params, body }) => engine.update(params.id, { enabled: true, action_config: {}, product_id: null, device_id: null, env: {}, ...body }),
    })
    .add({
      method: 'delete', path: '/rules/:id', tag: 'rules', role: 'operator', summary: 'Delete a rule', params: idParam, status: 204, errors: [404],
      handler: async ({ params }) => {
        await engine.delete(params.id);
      },
    })
    .add({
      method: 'post', path: '/rules/:id/test', tag: 'rules', role: 'operator', summary: 'Run a rule on a sample message without doing what it asks (a failing script answers 200 with `error` beside the logs)',
      params: idParam, body: testBody, errors: [404],
      returns: '`{ result, triggered, logs, commands, alarms, micros, action }` or `{ error: { code, message }, logs, commands, alarms, micros }`',
      handler: ({ params, body }) => engine.test(params.id, body.msg as never, body.device),
    });
}
