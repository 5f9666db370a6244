/**
 * Cluster mode's uplink log as a FLUX module, with the same face as the single-node one
 * (runtime/uplink-log/module.ts), so ingress, the API and plugin replay do not know which runs:
 * - the journal appends to the shared log before an acknowledgement and puts nothing on this
 *   node's bus: the node holding the uplink's partition does that (runtime/cluster-log/partition.ts);
 * - `replay()` (after the flows run) starts taking partitions; `processing` stops them before the
 *   flows stop, so that nothing is acknowledged as handled by flows that are gone;
 * - the log reads the partitions' streams for raw traffic and replays.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { ClusterLogSettings, FluxSettings } from '../../settings.ts';
import type { DeviceBus, UplinkMessage } from '../bus/index.ts';
import { FluxError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { counter, gauge, type MetricsRegistry } from '../metrics/index.ts';
import { LogRefusedError, type UplinkJournal, type UplinkLog, type UplinkLogModule, type UplinkLogStats } from '../uplink-log/index.ts';
import { createAppender, type Appender } from './appender.ts';
import { openEngine, type Engine } from './engine.ts';
import { tidy, type StreamStats } from './janitor.ts';
import { createLeases, type Leases } from './leases.ts';
import { startPartition } from './partition.ts';
import { createReader, type Reader } from './reader.ts';

const TIDY_EVERY_MS = 5000;

export interface ClusterLogDeps {
  settings: FluxSettings;
  cluster: ClusterLogSettings;
  bus: DeviceBus;
  logger: Logger;
  metrics: MetricsRegistry;
  /** how often the held partitions' streams are tidied and the stats read (ms; default 5 s) */
  tidyEveryMs?: number;
}

/** This process's name among the nodes: host, pid and a random part (a restarted node is a new one). */
function nodeToken(): string {
  const host = os.hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 24) || 'node';
  return `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export function createClusterLogModule(deps: ClusterLogDeps): UplinkLogModule {
  const { settings, cluster, bus, logger, metrics } = deps;
  const node = nodeToken();
  let engine: Engine | undefined;
  let appender: Appender | undefined;
  let reader: Reader | undefined;
  let leases: Leases | undefined;
  let stream: StreamStats | undefined;
  let lastFull = 0;
  let tidyTimer: NodeJS.Timeout | undefined;
  let processingStopped = false;

  const refusedTotal = counter(metrics, 'flux_uplink_log_refused_total', 'uplinks refused because the uplink log could not take them', ['reason']);
  const gauges = {
    bytes: gauge(metrics, 'flux_uplink_log_bytes', 'bytes of the uplink log (cluster mode: the streams of the partitions this node holds)'),
    unhandled: gauge(metrics, 'flux_uplink_log_unhandled', 'uplinks in the log not yet through the flows (cluster mode: messages, each a group of uplinks, in the partitions this node holds)'),
    appends: gauge(metrics, 'flux_uplink_log_appends', 'uplinks appended since start'),
    groups: gauge(metrics, 'flux_uplink_log_groups', 'group commits (cluster mode: messages published) since start'),
    partitions: gauge(metrics, 'flux_uplink_log_partitions', 'cluster mode: partitions this node processes'),
  };

  let lastRefusalLog = 0;
  const refusal = (err: LogRefusedError) => {
    refusedTotal.inc({ reason: err.code });
    if (err.code === 'log_full') lastFull = Date.now();
    const now = Date.now();
    if (now - lastRefusalLog > 5000) {
      lastRefusalLog = now;
      logger.warn({ reason: err.code, pending: appender?.pending() }, `uplinks refused: ${err.message}`);
    }
  };
  const notOpen = () => new LogRefusedError('log_unavailable', 'cluster log: not connected to NATS');
  /** a read NATS could not answer: 503, not a 500 */
  const unreadable = (err: Error) => (err instanceof FluxError ? err : new FluxError('log_unavailable', `cluster log: the uplink log could not be read (${err.message})`, 503));

  const log: UplinkLog = {
    async open() {
      return { unhandled: 0, truncatedBytes: 0, skippedBytes: 0 };
    },
    append(input, cb) {
      if (!appender) {
        queueMicrotask(() => cb(notOpen(), 0));
        return 0;
      }
      return appender.append(input, cb);
    },
    appendAsync(input) {
      return new Promise((resolve, reject) => log.append(input, (err, seq) => (err ? reject(err) : resolve(seq))));
    },
    // the partitions' holders acknowledge what their flows handled (partition.ts)
    handled() {},
    async *unhandled() {},
    async read(q) {
      if (!reader || !engine?.connected()) throw unreadable(notOpen());
      return reader.read(q).catch((err: Error) => {
        throw unreadable(err);
      });
    },
    async *scan(q) {
      if (!reader || !engine?.connected()) throw unreadable(notOpen());
      try {
        yield* reader.scan(q);
      } catch (err) {
        throw unreadable(err as Error);
      }
    },
    stats(): UplinkLogStats {
      const a = appender?.stats() ?? { appends: 0, groups: 0, refused: 0 };
      return {
        segments: 0,
        bytes: stream?.bytes ?? 0,
        lastSeq: 0,
        handledSeq: 0,
        unhandled: stream?.unhandled ?? 0,
        appends: a.appends,
        groups: a.groups,
        // durability is the NATS server's (docs/cluster.md), not an fdatasync of this node
        syncs: 0,
        lost: 0,
        refused: a.refused,
        full: Date.now() - lastFull < 10_000,
      };
    },
    async close() {
      await appender?.close();
    },
  };

  const journal: UplinkJournal = {
    append(up: UplinkMessage, durable) {
      const seq = log.append(up, (err) => {
        if (err) refusal(err as LogRefusedError);
        durable(err as LogRefusedError | null);
      });
      if (seq > 0) up.logSeq = seq;
    },
    // processed where its partition is held, never here: the answer is only backpressure
    emit: () => !journal.behind(),
    accept(up, acked) {
      journal.append(up, (err) => acked?.(err));
    },
    replayUnhandled: async () => 0,
    resume: async () => {},
    behind: () => (appender?.behind() ?? false) || bus.behind(),
    onDrain(cb) {
      if (appender?.behind()) appender.onDrain(() => journal.onDrain(cb));
      else bus.onDrain(cb);
    },
  };

  const runTidy = async () => {
    if (!engine || !leases) return;
    stream = await tidy(engine, leases.held(), { maxBytes: settings.uplinkLog.maxBytes, retentionMs: settings.uplinkLog.retentionMs });
  };

  const stopProcessing = async () => {
    processingStopped = true;
    await leases?.stop();
  };

  return {
    name: 'uplink_log',
    log,
    journal,
    async start() {
      engine = await openEngine({ settings: cluster, maxBytes: settings.uplinkLog.maxBytes, logger });
      appender = createAppender(engine, cluster.partitions);
      reader = createReader(engine, cluster.partitions);
      const e = engine;
      leases = createLeases({
        leases: e.leases,
        partitions: cluster.partitions,
        leaseMs: cluster.leaseMs,
        node,
        logger,
        startWorker: (partition, stillMine) => startPartition({ engine: e, bus, logger, partition, node, stillMine }),
      });
      logger.info({ node, streams: e.names.stream(0).replace(/_0$/, '_<p>'), partitions: cluster.partitions }, 'cluster log: the uplink log is shared, on NATS JetStream');
      tidyTimer = setInterval(() => {
        runTidy().catch((err: Error) => logger.debug({ err: err.message }, 'cluster log: tidying the streams failed'));
        const s = log.stats();
        gauges.bytes.set(s.bytes);
        gauges.unhandled.set(s.unhandled);
        gauges.appends.set(s.appends);
        gauges.groups.set(s.groups);
        gauges.partitions.set(leases?.held().size ?? 0);
      }, deps.tidyEveryMs ?? TIDY_EVERY_MS);
      tidyTimer.unref();
    },
    async stop() {
      clearInterval(tidyTimer);
      await stopProcessing();
      await log.close();
      await engine?.close();
    },
    health() {
      const s = log.stats();
      const held = [...(leases?.held().keys() ?? [])].sort((a, b) => a - b);
      return {
        ok: !!engine?.connected() && !s.full,
        engine: 'nats-jetstream',
        streams: engine ? `${engine.names.stream(0).replace(/_0$/, '')}_<0..${cluster.partitions - 1}>` : undefined,
        node,
        connected: engine?.connected() ?? false,
        partitions: held,
        nodes: leases?.nodes() ?? 0,
        pending: appender?.pending() ?? 0,
        ...s,
      };
    },
    async replay() {
      if (!processingStopped) leases?.start();
      return 0;
    },
    processing: {
      name: 'uplink_log_partitions',
      start: async () => {},
      stop: stopProcessing,
    },
  };
}
