/**
 * Shadow mode: a candidate version decodes a sample of the live frames of its plugin beside the
 * active one; the outputs are compared and counted, never stored or passed on. The live path only
 * asks `take` (a random draw and a counter) and, for a sampled frame, hands over the active
 * output; the candidate decodes on a worker thread of its own (host.openComparePool), so one that
 * loops or traps never replaces a live worker, at most SHADOW_QUEUE_MAX frames at a time.
 * A frame sampled while that many are waiting is dropped and counted, so a slow candidate never
 * holds live traffic back. Shadows live in memory: a restart ends them.
 */
import type { Logger } from '../log/index.ts';
import type { ComparePool, DecodeSample, DecodeTap, LoadedVersion, PluginHost, PluginVersion } from '../plugins/index.ts';
import { FluxError, notFound } from '../errors/index.ts';
import { decodedOf, DiffRing, sideOf, verdict, type Counts, type Decoded, type Diff } from './compare.ts';

/** candidate decodes waiting or running at once; past it sampled frames are dropped (and counted) */
export const SHADOW_QUEUE_MAX = 1024;
export const SHADOW_DIFFS_MAX = 50;

export interface ShadowStatus extends Counts {
  plugin: string;
  version: number;
  active_version: number | null;
  /** the share of live frames compared, 0 < sample ≤ 1 */
  sample: number;
  started_at: string;
  /** sampled frames not compared because SHADOW_QUEUE_MAX were waiting */
  dropped: number;
  queued: number;
  /** the newest diffs, oldest first */
  diffs: Diff[];
}

export interface Shadows {
  start(id: string, req: { version: number; sample?: number }): Promise<ShadowStatus>;
  status(id: string): ShadowStatus;
  /** Ends shadow mode; answers its last counts. */
  stop(id: string): ShadowStatus;
  /** Makes the candidate the active version (a hot swap) and ends shadow mode. */
  promote(id: string): Promise<{ promoted: PluginVersion; shadow: ShadowStatus }>;
  /** Counts of every running shadow, for /api/metrics. */
  all(): ShadowStatus[];
  stopAll(): void;
}

interface Shadow {
  tap: DecodeTap;
  pool: ComparePool;
  candidate: LoadedVersion;
  counts: Counts & { dropped: number };
  pending: number;
  ring: DiffRing;
  sample: number;
  startedAt: string;
}

export function createShadows({ host, logger }: { host: PluginHost; logger: Logger }): Shadows {
  const shadows = new Map<string, Shadow>();

  const statusOf = (id: string, s: Shadow): ShadowStatus => ({
    plugin: id,
    version: s.candidate.version,
    active_version: host.activeVersion(id) ?? null,
    sample: s.sample,
    started_at: s.startedAt,
    same: s.counts.same,
    different: s.counts.different,
    failed: s.counts.failed,
    dropped: s.counts.dropped,
    queued: s.pending,
    diffs: s.ring.list(),
  });

  function tapFor(s: Shadow): DecodeTap {
    const compare = (before: Decoded, bytes: Uint8Array, deviceId: string | undefined, ts: number | undefined, msgId: string | undefined) => {
      s.candidate.decode(bytes).then((o) => {
        s.pending--;
        const after = decodedOf(o);
        const v = verdict(before, after);
        s.counts[v]++;
        if (v !== 'same') s.ring.push({ msgId: msgId ?? null, deviceId: deviceId || null, ts: ts ?? null, before: sideOf(before), after: sideOf(after) });
      }, () => {
        s.pending--;
      });
    };
    return {
      take(deviceId, ts, msgId): DecodeSample | undefined {
        if (s.sample < 1 && Math.random() >= s.sample) return undefined;
        if (s.pending >= SHADOW_QUEUE_MAX) {
          s.counts.dropped++;
          return undefined;
        }
        s.pending++;
        return {
          // a copy now: the live path stamps `ts` into the messages right after
          seen: (bytes, output) => compare({ ok: true, value: structuredClone(output) }, bytes, deviceId, ts, msgId),
          failed: (bytes, cause, message) => compare({ ok: false, cause, message }, bytes, deviceId, ts, msgId),
        };
      },
    };
  }

  const theShadow = (id: string): Shadow => {
    const s = shadows.get(id);
    if (!s) throw notFound('shadow of plugin', id);
    return s;
  };

  const end = (id: string): ShadowStatus => {
    const s = theShadow(id);
    host.setTap(id, undefined);
    shadows.delete(id);
    void s.pool.close().catch(() => undefined);
    logger.info({ plugin: id, version: s.candidate.version, ...s.counts }, 'shadow mode ended');
    return statusOf(id, s);
  };

  return {
    async start(id, req) {
      if (shadows.has(id)) throw new FluxError('shadow_running', `plugin '${id}' already has a shadow version (${shadows.get(id)!.candidate.version}); stop it first`, 409);
      const info = await host.get(id);
      if (info.active_version === null) throw new FluxError('no_active_version', `plugin '${id}' has no active version to compare with`, 409);
      if (!info.versions.some((v) => v.version === req.version)) throw notFound('plugin version', `${id}@${req.version}`);
      // one worker thread of its own: a candidate that loops or crashes never holds the live workers up
      const pool = host.openComparePool('shadow', 1);
      let candidate: LoadedVersion;
      try {
        candidate = await pool.load(id, req.version);
      } catch (err) {
        await pool.close();
        throw err;
      }
      if (shadows.has(id)) {
        await pool.close();
        throw new FluxError('shadow_running', `plugin '${id}' already has a shadow version; stop it first`, 409);
      }
      const s: Shadow = {
        tap: undefined as unknown as DecodeTap, pool, candidate, counts: { same: 0, different: 0, failed: 0, dropped: 0 }, pending: 0,
        ring: new DiffRing(SHADOW_DIFFS_MAX), sample: req.sample ?? 1, startedAt: new Date().toISOString(),
      };
      s.tap = tapFor(s);
      shadows.set(id, s);
      host.setTap(id, s.tap);
      logger.info({ plugin: id, version: req.version, active: info.active_version, sample: s.sample }, 'shadow mode started');
      return statusOf(id, s);
    },
    status: (id) => statusOf(id, theShadow(id)),
    stop: end,
    async promote(id) {
      const s = theShadow(id);
      const promoted = await host.activateVersion(id, s.candidate.version);
      // the same shadow may have been stopped while the swap ran
      const shadow = shadows.get(id) === s ? end(id) : statusOf(id, s);
      return { promoted, shadow };
    },
    all: () => [...shadows].map(([id, s]) => statusOf(id, s)),
    stopAll() {
      for (const id of [...shadows.keys()]) end(id);
    },
  };
}
