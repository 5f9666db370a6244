/** Query and nested-field resolvers: the same backends and checks as the REST routes. */
import type { FluxContext } from '../app/context.ts';
import { badRequest } from '../errors/index.ts';
import type { Device, Product } from '../registry/index.ts';
import { parseTelemetryQuery, parseTime, type Storage } from '../storage/index.ts';
import type { AlarmCenter, AlarmFilter, AlarmState } from '../alarms/index.ts';
import type { RuleEngine, RuleView } from '../rules/index.ts';
import type { PluginHost } from '../plugins/index.ts';
import type { Loaders } from './loaders.ts';

export interface RequestContext {
  loaders: Loaders;
}

type Args = Record<string, any>;

/** limit/offset within bounds, else 400 naming the argument. */
export function pageArgs(args: Args, maxLimit = 1000): { limit: number; offset: number } {
  const limit = args.limit ?? 100;
  const offset = args.offset ?? 0;
  if (!Number.isInteger(limit) || limit < 1 || limit > maxLimit) throw badRequest(`limit must be an integer from 1 to ${maxLimit}`);
  if (!Number.isInteger(offset) || offset < 0) throw badRequest('offset must be a non-negative integer');
  return { limit, offset };
}

const pageOf = <T>(p: { items: T[]; total: number; limit: number; offset: number }) => ({
  items: p.items,
  page: { total: p.total, limit: p.limit, offset: p.offset, has_more: p.offset + p.items.length < p.total },
});

/** A rule as GraphQL shows it: its columns, and its counters under `stats`. */
export function ruleOut(r: RuleView) {
  return { ...r, quarantined: Boolean(r.quarantined), stats: { ...r.stats, ...(r.compile_error ? { compile_error: r.compile_error } : {}), ...(r.quarantine_reason ? { quarantine_reason: r.quarantine_reason, quarantined_at: r.quarantined_at } : {}) } };
}

/** The modules behind the queries, from the composition root. */
export interface QueryDeps {
  storage: Storage;
  rules: RuleEngine;
  alarms: AlarmCenter;
  plugins: PluginHost;
}

export function queryResolvers(ctx: FluxContext, deps: QueryDeps) {
  const storage = () => deps.storage;
  const rules = () => deps.rules;
  const alarms = () => deps.alarms;
  const plugins = () => deps.plugins;
  const nullable = (v: unknown) => (v === null ? undefined : v);

  return {
    Query: {
      products: async (_: unknown, a: Args) => pageOf(await ctx.registry.products.list({ key: nullable(a.key) as string, q: nullable(a.q) as string, protocol_plugin_id: nullable(a.protocol_plugin_id) as string, ...pageArgs(a) })),
      product: (_: unknown, a: Args) => ctx.registry.products.find(a.id),
      devices: async (_: unknown, a: Args) =>
        pageOf(
          await ctx.registry.devices.list({
            product_id: nullable(a.product_id) as string,
            status: nullable(a.status) as string,
            enabled: nullable(a.enabled) as boolean,
            is_gateway: nullable(a.is_gateway) as boolean,
            gateway_id: nullable(a.gateway_id) as string,
            q: nullable(a.q) as string,
            ...pageArgs(a),
          }),
        ),
      device: (_: unknown, a: Args) => ctx.registry.devices.find(a.id),
      telemetry: async (_: unknown, a: Args) => {
        const q = parseTelemetryQuery({ metric: a.metrics?.join(','), from: nullable(a.from), to: nullable(a.to), interval: nullable(a.interval), agg: a.agg?.join(','), limit: a.limit === undefined || a.limit === null ? undefined : String(a.limit), order: nullable(a.order), offset: a.offset === undefined || a.offset === null ? undefined : String(a.offset) });
        await ctx.registry.devices.get(a.device_id);
        const s = storage();
        if (q.interval !== undefined) {
          const buckets = await s.store.aggregate({ device: a.device_id, metrics: q.metrics, from: q.from, to: q.to, interval: q.interval, aggs: q.aggs, limit: q.limit + 1 });
          return { device_id: a.device_id, from: q.from, to: q.to, interval: q.interval, samples: [], buckets: buckets.slice(0, q.limit), truncated: buckets.length > q.limit };
        }
        const samples = await s.store.range({ device: a.device_id, metrics: q.metrics, from: q.from, to: q.to, limit: q.limit + 1, order: q.order, offset: q.offset });
        return { device_id: a.device_id, from: q.from, to: q.to, interval: null, samples: samples.slice(0, q.limit), buckets: [], truncated: samples.length > q.limit };
      },
      events: async (_: unknown, a: Args) => {
        const to = parseTime(nullable(a.to), 'to', Date.now());
        const from = parseTime(nullable(a.from), 'from', to - 86_400_000);
        if (from >= to) throw badRequest('from must be before to');
        const { limit } = pageArgs({ limit: a.limit ?? 1000 }, 10_000);
        const device = await ctx.registry.devices.get(a.device_id);
        const got = await storage().store.events({ device: a.device_id, product: device.product_id, event: nullable(a.event) as string, from, to, order: a.order ?? 'asc', limit: limit + 1 });
        return { items: got.slice(0, limit).map((e) => ({ ...e, device_id: e.device, event_id: e.event })), has_more: got.length > limit };
      },
      rules: async (_: unknown, a: Args) => (await rules().list({ product_id: nullable(a.product_id) as string, device_id: nullable(a.device_id) as string, enabled: nullable(a.enabled) as boolean })).map(ruleOut),
      rule: async (_: unknown, a: Args) => ruleOut(await rules().get(a.id)),
      alarms: async (_: unknown, a: Args) => {
        const filter: AlarmFilter = { state: nullable(a.state) as AlarmState, level: nullable(a.level) as AlarmFilter['level'], rule_id: nullable(a.rule_id) as string, device_id: nullable(a.device_id) as string, ...pageArgs({ limit: a.limit ?? 50, offset: a.offset }) };
        return pageOf(await alarms().list(filter));
      },
      plugins: () => plugins().list(),
      plugin: async (_: unknown, a: Args) => (await plugins().list()).find((p) => p.id === a.id) ?? null,
      trace: (_: unknown, a: Args) => ctx.trace.get(a.msg_id) ?? null,
    },
    Product: {
      devices: (p: Product, a: Args, c: RequestContext) => c.loaders.devicesOf(pageArgs({ limit: a.limit ?? 100 }).limit).load(p.id),
    },
    Device: {
      product: (d: Device, _: Args, c: RequestContext) => c.loaders.product.load(d.product_id),
      latest: (d: Device, _: Args, c: RequestContext) => c.loaders.latest.load(d.id),
      alarms: (d: Device, a: Args, c: RequestContext) => c.loaders.alarmsOf(nullable(a.state) as AlarmState, pageArgs({ limit: a.limit ?? 20 }).limit).load(d.id),
    },
  };
}
