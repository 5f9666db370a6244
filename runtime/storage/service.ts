/**
 * The `timeseries_db` module: opens the store named by FLUX_TS_URL, runs the writer (with its
 * on-disk buffer in `<data dir>/ts-buffer`) and per-product retention in the background, and
 * gives the `Storage` that nodes and the API use (handed over by runtime/app/index.ts).
 */
import path from 'node:path';
import { redact } from '../../settings.ts';
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import { ConfigError } from '../errors/index.ts';
import { counter } from '../metrics/index.ts';
import type { Product } from '../registry/index.ts';
import { policyOf, toPoints, type ProductPolicy, type Refused, type StandardMessage } from './model.ts';
import { createStore } from './store.ts';
import type { DeviceEvent, Point, TimeSeriesStore } from './types.ts';
import { toEvent } from './events.ts';
import { StoreWriter, type WriterOptions, type WriterStats } from './writer.ts';

export interface IngestResult {
  points: number;
  refused: Refused[];
  /** device events among the messages (stored as events, not points) */
  events?: number;
}

/** prepare()'s answer: what to write. */
export type Prepared = IngestResult & { points_list: Point[]; events_list: DeviceEvent[] };

/** What other modules get as `storage` from the composition root. */
export interface Storage {
  readonly store: TimeSeriesStore;
  /** Checks StandardMessage(s) against the device's product model (counted), without writing. */
  prepare(messages: StandardMessage | StandardMessage[], device: { id: string; product_id?: string }, fallbackTs?: number, msgId?: string): Promise<Prepared>;
  /**
   * prepare() without waiting, when the product's policy is at hand (cached and fresh, `product_id`
   * given); otherwise undefined, and the caller uses prepare(). Saves a Promise per message.
   */
  prepareNow?(messages: StandardMessage | StandardMessage[], device: { id: string; product_id?: string }, fallbackTs?: number, msgId?: string): Prepared | undefined;
  /** prepare() and write(): resolves when stored or buffered. */
  ingest(messages: StandardMessage | StandardMessage[], device: { id: string; product_id?: string }, fallbackTs?: number): Promise<IngestResult>;
  /** Queues already-checked points and device events: resolves when stored or in the on-disk buffer (the store may be away). */
  write(points: Point[], events?: DeviceEvent[]): Promise<void>;
  /** write() of device events alone (checked by prepare()). */
  writeEvents(events: DeviceEvent[]): Promise<void>;
  /** Waits until everything queued so far is stored or buffered. */
  flush(): Promise<void>;
  policy(productId: string): Promise<ProductPolicy>;
  /** One retention pass over every product with `metadata.storage.retention_days`; answers points deleted per product id. */
  runRetention(now?: number): Promise<Record<string, number>>;
  stats(): WriterStats;
}

export interface StorageModuleOptions {
  store?: TimeSeriesStore;
  writer?: Partial<Omit<WriterOptions, 'store' | 'log' | 'metrics'>>;
  /** retention pass period (default 1 h; first pass one minute after start) */
  retentionEveryMs?: number;
  /** how long a product's policy is cached (default 5 s) */
  policyTtlMs?: number;
}

export interface StorageModule extends FluxModule {
  readonly storage: Storage;
}

export function createStorageModule(ctx: FluxContext, opts: StorageModuleOptions = {}): StorageModule {
  const log = ctx.log.child({ module: 'storage' });
  const ts = ctx.settings.ts;
  const store = opts.store ?? createStore(ts);
  const writer = new StoreWriter({ store, log, metrics: ctx.metrics, bufferDir: path.join(ctx.settings.dataDir, 'ts-buffer'), ...opts.writer });
  const rejected = counter(ctx.metrics, 'flux_storage_values_refused_total', 'Values refused by the thing-model check', ['reason']);
  const unknownKept = counter(ctx.metrics, 'flux_storage_unknown_properties_kept_total', 'Values of properties the thing model does not declare, kept by product setting');
  const flaggedEvents = counter(ctx.metrics, 'flux_storage_events_flagged_total', 'Device events whose payload does not match the thing model (stored, flagged)');
  const retentionDeleted = counter(ctx.metrics, 'flux_storage_retention_deleted_total', 'Points deleted by retention');
  const policyTtl = opts.policyTtlMs ?? 5000;
  const policies = new Map<string, { at: number; policy: ProductPolicy; modelKey: string }>();
  const defined = new Map<string, string>();
  let retentionTimer: NodeJS.Timeout | undefined;
  let retentionRunning: Promise<unknown> | undefined;
  let started = false;

  /** policy reads in flight, one per product: the messages that find it stale share one */
  const loadingPolicies = new Map<string, Promise<ProductPolicy>>();

  function policyFor(productId: string): Promise<ProductPolicy> {
    const hit = policies.get(productId);
    if (hit && Date.now() - hit.at < policyTtl) return Promise.resolve(hit.policy);
    let pending = loadingPolicies.get(productId);
    if (!pending) {
      pending = readPolicy(productId).finally(() => loadingPolicies.delete(productId));
      loadingPolicies.set(productId, pending);
    }
    return pending;
  }

  async function readPolicy(productId: string): Promise<ProductPolicy> {
    const product: Product | null = await ctx.registry.products.find(productId);
    const policy = product ? policyOf(product) : { productId, unknown: 'keep' as const, types: new Map() };
    const modelKey = JSON.stringify([...policy.types]);
    policies.set(productId, { at: Date.now(), policy, modelKey });
    // Stores with typed columns (TDengine) learn the model, and every change of it.
    if (store.defineProduct && defined.get(productId) !== modelKey && policy.types.size) {
      await store.defineProduct(productId, [...policy.types].map(([id, type]) => ({ id, type })));
      defined.set(productId, modelKey);
    }
    return policy;
  }

  function check(messages: StandardMessage | StandardMessage[], device: { id: string }, policy: ProductPolicy, fallbackTs: number, msgId: string | undefined): Prepared {
    if (!Array.isArray(messages) && messages.event_id === undefined) {
      // the common case, one message: its own arrays, no copies
      const c = toPoints(messages, messages.device_id || device.id, policy, fallbackTs);
      if (c.unknownKept) unknownKept.inc(c.unknownKept);
      for (const r of c.refused) rejected.inc({ reason: r.reason });
      return { points: c.points.length, refused: c.refused, points_list: c.points, events_list: [] };
    }
    const points: Point[] = [];
    const refused: Refused[] = [];
    const events: DeviceEvent[] = [];
    for (const m of Array.isArray(messages) ? messages : [messages]) {
      if (typeof m.event_id === 'string') {
        const e = toEvent(m as StandardMessage & { event_id: string }, m.device_id || device.id, policy.productId, policy.events, fallbackTs, msgId ?? null);
        if (e.flagged) flaggedEvents.inc();
        events.push(e);
        continue;
      }
      const c = toPoints(m, m.device_id || device.id, policy, fallbackTs);
      for (const p of c.points) points.push(p);
      for (const r of c.refused) refused.push(r);
      if (c.unknownKept) unknownKept.inc(c.unknownKept);
    }
    for (const r of refused) rejected.inc({ reason: r.reason });
    return { points: points.length, refused, points_list: points, events_list: events, events: events.length };
  }

  const storage: Storage = {
    store,
    async ingest(messages, device, fallbackTs) {
      const r = await storage.prepare(messages, device, fallbackTs);
      await writer.write(r.points_list, r.events_list);
      return { points: r.points, refused: r.refused, ...(r.events ? { events: r.events } : {}) };
    },
    async prepare(messages, device, fallbackTs = Date.now(), msgId) {
      let productId = device.product_id;
      if (!productId) {
        const identity = await ctx.registry.devices.identity(device.id);
        if (!identity) throw new Error(`device '${device.id}' is not registered`);
        productId = identity.product.id;
      }
      let policy: ProductPolicy;
      try {
        policy = await policyFor(productId);
      } catch (err) {
        // The registry (or a TDengine ALTER) failing must not lose telemetry: last known policy, or keep all.
        policy = policies.get(productId)?.policy ?? { productId, unknown: 'keep', types: new Map() };
        log.warn({ err: (err as Error).message, productId }, 'product policy unavailable; storing values unchecked');
      }
      return check(messages, device, policy, fallbackTs, msgId);
    },
    prepareNow(messages, device, fallbackTs = Date.now(), msgId) {
      const productId = device.product_id;
      if (!productId) return undefined;
      const hit = policies.get(productId);
      if (!hit) return undefined;
      // Past its TTL the policy still serves while one read refreshes it: before, every message of
      // the product waited on its own registry read each time it expired (a latency spike every 5 s).
      if (Date.now() - hit.at >= policyTtl && !loadingPolicies.has(productId)) {
        policyFor(productId).catch((err: Error) => log.warn({ err: err.message, productId }, 'refreshing a product policy failed; keeping the last one'));
      }
      return check(messages, device, hit.policy, fallbackTs, msgId);
    },
    write: (points, events) => writer.write(points, events),
    writeEvents: (events) => writer.write([], events),
    flush: () => writer.flush(),
    policy: policyFor,
    async runRetention(now = Date.now()) {
      const out: Record<string, number> = {};
      for (let offset = 0; ; offset += 500) {
        const page = await ctx.registry.products.list({ limit: 500, offset });
        for (const product of page.items) {
          const p = policyOf(product);
          if (!p.retentionDays) continue;
          const before = now - p.retentionDays * 86_400_000;
          const n = await store.deleteBefore(product.id, before);
          const e = await store.deleteEventsBefore(product.id, before);
          if (e !== 0) log.info({ product: product.key, deleted: e, days: p.retentionDays }, 'retention deleted old events');
          out[product.id] = n;
          if (n > 0) retentionDeleted.inc(n);
          if (n !== 0) log.info({ product: product.key, deleted: n, days: p.retentionDays }, 'retention deleted old telemetry');
        }
        if (page.items.length < 500) break;
      }
      return out;
    },
    stats: () => writer.stats(),
  };

  function scheduleRetention(delay: number): void {
    retentionTimer = setTimeout(() => {
      retentionRunning = storage
        .runRetention()
        .catch((err) => log.warn({ err: (err as Error).message }, 'retention pass failed; retrying next period'))
        .finally(() => {
          retentionRunning = undefined;
          if (started) scheduleRetention(opts.retentionEveryMs ?? 3_600_000);
        });
    }, delay);
    retentionTimer.unref();
  }

  return {
    name: 'timeseries_db',
    storage,
    async start() {
      try {
        await store.open();
      } catch (err) {
        await store.close().catch(() => {});
        const e = err as { code?: string; message?: string };
        const where = ts.dialect === 'sqlite' ? ts.file : redact(ts.url);
        throw new ConfigError('FLUX_TS_URL', `FLUX_TS_URL: cannot open the ${ts.dialect} time-series database ${where}: ${e.code ?? e.message ?? String(err)}`);
      }
      writer.start();
      started = true;
      scheduleRetention(Math.min(60_000, opts.retentionEveryMs ?? 60_000));
      log.info({ dialect: store.info.dialect, layout: store.info.layout }, 'time-series store open');
    },
    async stop() {
      if (!started) return;
      started = false;
      clearTimeout(retentionTimer);
      await retentionRunning;
      await writer.stop();
      await store.close();
    },
    async health(): Promise<ComponentHealth> {
      const s = writer.stats();
      const t0 = performance.now();
      try {
        await store.ping();
        return { ok: true, dialect: store.info.dialect, layout: store.info.layout, latency_ms: Math.round((performance.now() - t0) * 10) / 10, ...s };
      } catch (err) {
        return { ok: false, dialect: store.info.dialect, error: (err as Error).message, ...s };
      }
    },
  };
}
