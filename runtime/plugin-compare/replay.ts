/**
 * Replay: recorded uplinks (runtime/uplink-log) decoded again through a stored version of a plugin
 * and compared with the version active when the replay started, re-decoded beside it (not what was
 * stored at the time: the log keeps bytes, not outputs). Nothing is stored, no rule runs, no
 * command goes out: frames go to the plugin workers only, never onto the device bus.
 *
 * Bounded: `limit` frames (default 10,000, at most 100,000), the first 100 diffs kept (the counts
 * are exact), one replay per plugin and two in the whole process at once, each decoding in worker
 * threads of its own (host.openComparePool) so that live decodes never queue behind it.
 */
import os from 'node:os';
import type { Logger } from '../log/index.ts';
import type { ComparePool, LoadedVersion, PluginHost } from '../plugins/index.ts';
import type { Registry } from '../registry/index.ts';
import type { UplinkLog, LogRecord } from '../uplink-log/index.ts';
import { FluxError, notFound } from '../errors/index.ts';
import { decodedOf, sideOf, verdict, type Counts, type Diff } from './compare.ts';

export const REPLAY_LIMIT_DEFAULT = 10_000;
export const REPLAY_LIMIT_MAX = 100_000;
export const REPLAY_DIFFS_MAX = 100;
export const REPLAYS_AT_ONCE = 2;
/** Frames per step, and steps in flight: enough to keep the workers' batches full, few enough to bound memory (2 × 1024 × 3 calls). */
const CHUNK = 1024;
const IN_FLIGHT = 3;

export interface ReplayRequest {
  version: number;
  from: number;
  to: number;
  /** device ids; none: every device */
  devices?: string[];
  /** product ids or keys; none: every product whose protocol plugin is this one */
  products?: string[];
  limit?: number;
}

export type ReplayState = 'running' | 'done' | 'cancelled' | 'failed';

export interface ReplayReport extends Counts {
  job: string;
  plugin: string;
  version: number;
  active_version: number;
  state: ReplayState;
  /** frames compared so far (the final count once done) */
  total: number;
  /** the log held more matching frames than `limit` */
  truncated: boolean;
  diffs: Diff[];
  started_at: string;
  took_ms: number;
  error?: { code: string; message: string };
}

export interface Replayer {
  /** Starts a replay; `done` settles with the final report (also when cancelled). */
  start(id: string, req: ReplayRequest): Promise<{ report: ReplayReport; done: Promise<ReplayReport> }>;
  /** The running replay of `id`, else its last one. */
  status(id: string): ReplayReport | undefined;
  /** Cancels the running replay of `id`; answers its report, or undefined when none runs. */
  cancel(id: string): ReplayReport | undefined;
  /** Cancels every replay and waits for them (stop). */
  stop(): Promise<void>;
}

export interface ReplayDeps {
  host: PluginHost;
  log: UplinkLog;
  registry: Registry;
  logger: Logger;
}

interface Job {
  report: ReplayReport;
  abort: AbortController;
  done: Promise<ReplayReport>;
}

/** A finished replay's worker threads wait this long for the next replay (spawning them costs ~0.3 s of CPU each). */
const SPARE_POOL_MS = 60_000;

export function createReplayer({ host, log, registry, logger }: ReplayDeps): Replayer {
  const running = new Map<string, Job>();
  const last = new Map<string, ReplayReport>();
  let jobs = 0;
  let spare: { pool: ComparePool; timer: NodeJS.Timeout } | undefined;

  const takePool = (): ComparePool => {
    // one worker per core (at most 2): a replay is short and bounded, and shares the CPU with live decodes while it runs
    if (!spare) return host.openComparePool('replay', Math.max(1, Math.min(os.availableParallelism(), 2)));
    clearTimeout(spare.timer);
    const { pool } = spare;
    spare = undefined;
    return pool;
  };
  /** A pool whose replay ended normally is kept for the next one; a cancelled or failed one may still be busy, so it stops. */
  const givePool = async (pool: ComparePool, reusable: boolean): Promise<void> => {
    if (!reusable || spare) return pool.close().catch(() => undefined);
    const timer = setTimeout(() => {
      if (spare?.pool === pool) spare = undefined;
      void pool.close().catch(() => undefined);
    }, SPARE_POOL_MS);
    timer.unref();
    spare = { pool, timer };
  };

  /** Product ids whose frames this replay takes. */
  async function productIds(id: string, names: string[] | undefined): Promise<Set<string>> {
    if (names?.length) {
      const out = new Set<string>();
      for (const n of names) {
        const p = await registry.products.find(n);
        if (!p) throw new FluxError('unknown_product', `product '${n.slice(0, 100)}' not found`, 400);
        out.add(p.id);
      }
      return out;
    }
    const page = await registry.products.list({ protocol_plugin_id: id, limit: 1000, offset: 0 });
    return new Set(page.items.map((p) => p.id));
  }

  async function run(job: Job, req: ReplayRequest, before: LoadedVersion, after: LoadedVersion, products: Set<string>): Promise<void> {
    const r = job.report;
    const limit = req.limit ?? REPLAY_LIMIT_DEFAULT;
    const devices = req.devices?.length ? new Set(req.devices) : undefined;
    const t0 = performance.now();
    // Up to IN_FLIGHT chunks decode at once (the workers never wait for the comparing); they are
    // compared in log order, so the diffs kept are the first ones.
    const inFlight: Promise<void>[] = [];
    // Cancelling does not wait for the chunks in flight (a candidate cut off at its deadline on
    // every frame would take long): their outcomes are no longer counted.
    const cancelled = new Promise<void>((resolve) => job.abort.signal.addEventListener('abort', () => resolve(), { once: true }));
    const settled = (p: Promise<unknown>) => Promise.race([p, cancelled]);
    const compare = async (chunk: LogRecord[]) => {
      const frames = chunk.map((rec) => rec.payload);
      const previous = inFlight.at(-1);
      const [outsBefore, outsAfter] = await Promise.all([before.decodeMany(frames), after.decodeMany(frames)]);
      if (previous) await previous;
      if (job.abort.signal.aborted) return;
      for (let i = 0; i < chunk.length; i++) {
        const b = decodedOf(outsBefore[i]!), a = decodedOf(outsAfter[i]!);
        const v = verdict(b, a);
        r[v]++;
        r.total++;
        if (v !== 'same' && r.diffs.length < REPLAY_DIFFS_MAX) {
          const rec = chunk[i]!;
          r.diffs.push({ msgId: rec.id, deviceId: rec.deviceId, ts: rec.ts, before: sideOf(b), after: sideOf(a) });
        }
      }
      r.took_ms = Math.round(performance.now() - t0);
    };
    if (products.size === 0) return;
    let chunk: LogRecord[] = [];
    let taken = 0;
    scan: for await (const batch of log.scan({ from: req.from, to: req.to })) {
      for (const rec of batch) {
        if (!products.has(rec.productId) || (devices && !devices.has(rec.deviceId))) continue;
        if (taken === limit) {
          r.truncated = true;
          break scan;
        }
        taken++;
        chunk.push(rec);
        if (chunk.length === CHUNK) {
          inFlight.push(compare(chunk));
          chunk = [];
          if (inFlight.length >= IN_FLIGHT) await settled(inFlight.shift()!);
          if (job.abort.signal.aborted) break scan;
        }
      }
      if (job.abort.signal.aborted) break;
    }
    if (chunk.length && !job.abort.signal.aborted) inFlight.push(compare(chunk));
    await settled(Promise.all(inFlight));
    r.took_ms = Math.round(performance.now() - t0);
  }

  return {
    async start(id, req) {
      const busy = () => {
        if (running.has(id)) throw new FluxError('replay_running', `a replay of plugin '${id}' is running; cancel it (DELETE) or wait`, 409);
        if (jobs >= REPLAYS_AT_ONCE) throw new FluxError('too_many_replays', `${REPLAYS_AT_ONCE} replays are running; try again when one finished`, 429);
      };
      busy();
      const info = await host.get(id);
      if (info.active_version === null) throw new FluxError('no_active_version', `plugin '${id}' has no active version to compare with`, 409);
      if (!info.versions.some((v) => v.version === req.version)) throw notFound('plugin version', `${id}@${req.version}`);
      if (req.from > req.to) throw new FluxError('bad_range', '`from` is after `to`', 400);
      // again after the await, and counted in the same turn: two requests at once cannot both pass
      busy();
      jobs++;
      const abort = new AbortController();
      const report: ReplayReport = {
        job: `${id}-${Date.now().toString(36)}`, plugin: id, version: req.version, active_version: info.active_version, state: 'running',
        total: 0, same: 0, different: 0, failed: 0, truncated: false, diffs: [], started_at: new Date().toISOString(), took_ms: 0,
      };
      const job: Job = { report, abort, done: undefined as unknown as Promise<ReplayReport> };
      const previous = last.get(id);
      running.set(id, job);
      last.set(id, report);
      const pool = takePool();
      const loaded: LoadedVersion[] = [];
      try {
        const products = await productIds(id, req.products);
        const b = await pool.load(id, info.active_version);
        loaded.push(b);
        const a = await pool.load(id, req.version);
        loaded.push(a);
        // the state changes last: once it says the replay ended, a new one may start
        job.done = run(job, req, b, a, products).then(
          () => ({ state: abort.signal.aborted ? ('cancelled' as const) : ('done' as const) }),
          (err: Error) => {
            logger.warn({ plugin: id, err: err.message }, 'replay failed');
            return { state: 'failed' as const, error: { code: 'replay_failed', message: err.message } };
          },
        ).then(async (end) => {
          for (const v of loaded) v.release();
          await givePool(pool, end.state === 'done');
          running.delete(id);
          jobs--;
          if (end.state === 'failed') report.error = end.error;
          report.state = end.state;
          logger.info({ plugin: id, version: req.version, state: report.state, total: report.total, different: report.different, failed: report.failed, took_ms: report.took_ms }, 'replay finished');
          return report;
        });
      } catch (err) {
        for (const v of loaded) v.release();
        await givePool(pool, true);
        running.delete(id);
        if (previous) last.set(id, previous);
        else last.delete(id);
        jobs--;
        throw err;
      }
      return { report, done: job.done };
    },
    status: (id) => running.get(id)?.report ?? last.get(id),
    cancel(id) {
      const job = running.get(id);
      if (!job) return undefined;
      job.abort.abort();
      return job.report;
    },
    async stop() {
      const all = [...running.values()];
      for (const j of all) j.abort.abort();
      await Promise.all(all.map((j) => j.done));
      if (spare) {
        clearTimeout(spare.timer);
        await spare.pool.close().catch(() => undefined);
        spare = undefined;
      }
    },
  };
}
