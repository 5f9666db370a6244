/**
 * The uplink log as a FLUX module: opened first and closed last (so everything acknowledged is
 * appended before it closes), with its metrics and health, and the journal ingress appends through.
 */
import path from 'node:path';
import type { FluxSettings } from '../../settings.ts';
import type { DeviceBus } from '../bus/index.ts';
import type { Logger } from '../log/index.ts';
import { counter, gauge, type MetricsRegistry } from '../metrics/index.ts';
import { createUplinkLog } from './log.ts';
import type { UplinkLog } from './types.ts';
import { createUplinkJournal, type UplinkJournal } from './journal.ts';

export interface UplinkLogModule {
  readonly name: 'uplink_log';
  readonly log: UplinkLog;
  readonly journal: UplinkJournal;
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): { ok: boolean; [k: string]: unknown };
  /** After the flows run: processes what a previous run left unhandled, then what arrived meanwhile. Answers how many were left. */
  replay(): Promise<number>;
  /**
   * Cluster mode (runtime/cluster-log): the partitions this node processes, which must stop before
   * the flows do (the composition root stops it with device access); single-node: none.
   */
  readonly processing?: { readonly name: string; start(): Promise<void>; stop(): Promise<void> };
}

export function createUplinkLogModule(deps: { settings: FluxSettings; bus: DeviceBus; logger: Logger; metrics: MetricsRegistry }): UplinkLogModule {
  const { settings, logger, metrics } = deps;
  const log = createUplinkLog({ dir: path.join(settings.dataDir, 'uplink-log'), ...settings.uplinkLog });
  const refused = counter(metrics, 'flux_uplink_log_refused_total', 'uplinks refused because the uplink log could not take them', ['reason']);
  const journal = createUplinkJournal({ log, bus: deps.bus, logger, refused });
  const bytes = gauge(metrics, 'flux_uplink_log_bytes', 'bytes of the uplink log on disk');
  const unhandled = gauge(metrics, 'flux_uplink_log_unhandled', 'uplinks in the log not yet through the flows');
  const appends = gauge(metrics, 'flux_uplink_log_appends', 'uplinks appended since start');
  const groups = gauge(metrics, 'flux_uplink_log_groups', 'group commits (writes) since start');
  const syncs = gauge(metrics, 'flux_uplink_log_syncs', 'fdatasyncs of the log since start (FLUX_LOG_FSYNC=always; a group nobody acknowledges is synced within 1 s)');
  let collector: NodeJS.Timeout | undefined;
  return {
    name: 'uplink_log',
    log,
    journal,
    async start() {
      const { unhandled: left, truncatedBytes, skippedBytes } = await log.open();
      if (truncatedBytes) logger.warn({ truncatedBytes }, 'uplink log: cut a torn tail left by a crash (never acknowledged)');
      if (skippedBytes) logger.error({ skippedBytes }, 'uplink log: skipped damaged bytes inside the open segment (a disk fault, not a crash); the whole records after them are kept');
      if (left) logger.info({ unhandled: left }, 'uplink log: uplinks from the previous run will be processed again');
      collector = setInterval(() => {
        const s = log.stats();
        bytes.set(s.bytes);
        unhandled.set(s.unhandled);
        appends.set(s.appends);
        groups.set(s.groups);
        syncs.set(s.syncs);
      }, 1000);
      collector.unref();
    },
    async stop() {
      clearInterval(collector);
      await log.close();
    },
    health() {
      const s = log.stats();
      return { ok: !s.full, fsync: settings.uplinkLog.fsync, ...s };
    },
    async replay() {
      const t0 = Date.now();
      const n = await journal.replayUnhandled();
      if (n) logger.info({ replayed: n, took_ms: Date.now() - t0 }, 'uplink log: unhandled uplinks of the previous run are back in the flows');
      const lost = log.stats().lost;
      if (lost) logger.error({ lost }, 'uplink log: unhandled uplinks of the previous run were lost to damaged blocks of the log (a disk fault); the rest were processed');
      await journal.resume();
      return n;
    },
  };
}
