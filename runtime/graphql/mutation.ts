/** Mutations: the REST routes' own writes and checks (runtime/api), so both APIs refuse alike. */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import { FluxError, badRequest } from '../errors/index.ts';
import type { PluginHost } from '../plugins/index.ts';
import { deviceWrites, productWrites, parseBody } from '../api/index.ts';
import { ruleCreate, rulePatch } from '../rules/index.ts';
import type { Downlink } from '../ingress/index.ts';
import { ruleOut, type QueryDeps } from './query.ts';

type Args = Record<string, any>;

const sample = z.object({ device_id: z.string().min(1).max(64), values: z.record(z.string(), z.unknown()).default({}), ts: z.number().optional(), event_id: z.string().max(64).optional() }).loose();

/** GraphQL input objects without the fields left out (null stays: it clears a nullable field). */
const given = (input: Record<string, unknown>) => Object.fromEntries(Object.entries(input ?? {}).filter(([, v]) => v !== undefined));

export function mutationResolvers(ctx: FluxContext, deps: QueryDeps & { plugins: PluginHost; downlink: Downlink }) {
  const products = productWrites(ctx, deps.plugins);
  const devices = deviceWrites(ctx);
  const rules = () => deps.rules;
  const alarms = () => deps.alarms;
  return {
    Mutation: {
      createProduct: (_: unknown, a: Args) => products.create(given(a.input)),
      updateProduct: (_: unknown, a: Args) => products.update(a.id, given(a.input)),
      deleteProduct: async (_: unknown, a: Args) => (await products.delete(a.id), true),
      createDevice: (_: unknown, a: Args) => devices.create(given(a.input)),
      updateDevice: (_: unknown, a: Args) => devices.update(a.id, given(a.input)),
      deleteDevice: async (_: unknown, a: Args) => (await ctx.registry.devices.delete(a.id), true),
      createRule: async (_: unknown, a: Args) => ruleOut(await rules().create(parseBody(ruleCreate, given(a.input)))),
      updateRule: async (_: unknown, a: Args) => ruleOut(await rules().update(a.id, parseBody(rulePatch.refine((b) => Object.keys(b).length > 0, 'nothing to update'), given(a.input)))),
      deleteRule: async (_: unknown, a: Args) => (await rules().delete(a.id), true),
      sendCommand: async (_: unknown, a: Args) => {
        if (typeof a.command !== 'string' || a.command.length < 1 || a.command.length > 128) throw badRequest('command must be 1 to 128 characters');
        const r = await deps.downlink.send(a.device_id, a.command, a.params ?? {});
        if (r.status === 'offline') throw new FluxError('device_offline', `device '${a.device_id}' is offline: ${r.reason ?? 'no connection'}`, 409);
        const { deviceId, ...rest } = r;
        return { ...rest, device_id: deviceId };
      },
      acknowledgeAlarm: (_: unknown, a: Args) => alarms().ack(a.id),
      clearAlarm: (_: unknown, a: Args) => alarms().clear(a.id),
      testRuleScript: (_: unknown, a: Args) => {
        if (typeof a.trigger_script !== 'string' || a.trigger_script.length > 200_000) throw badRequest('trigger_script must be at most 200000 characters');
        const env = a.env ?? undefined;
        if (env !== undefined && (typeof env !== 'object' || env === null || Array.isArray(env))) throw badRequest('env must be an object');
        return rules().testScript(a.trigger_script, parseBody(sample, a.msg) as never, env);
      },
    },
  };
}
