/**
 * The connection to NATS JetStream and what this cluster keeps there (docs/cluster.md "The shared
 * uplink log"): one stream per partition, `<name>_uplinks_<p>` with the subject `<name>.up.<p>`
 * (file storage, each bounded by FLUX_RAW_MAX_BYTES / partitions and refusing new messages past
 * it), and the key-value bucket `<name>_leases` (which node holds which partition, which nodes
 * live; entries expire after FLUX_LOG_LEASE unless renewed).
 *
 * A stream per partition rather than one stream filtered by subject: on nats-server 2.9 a consumer
 * filtered to one of 16 interleaved subjects delivered ~450 messages/s where an unfiltered one
 * delivered ~21,000/s (measured here), and in a NATS cluster each stream has its own leader, so the
 * partitions spread over the servers.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DiscardPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { ClusterLogSettings } from '../../settings.ts';
import { ConfigError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';

export interface Names {
  stream(partition: number): string;
  subject(partition: number): string;
  bucket: string;
}

export function namesOf(name: string): Names {
  return { stream: (p) => `${name}_uplinks_${p}`, subject: (p) => `${name}.up.${p}`, bucket: `${name}_leases` };
}

export interface Engine {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly leases: KV;
  readonly names: Names;
  readonly partitions: number;
  /** the largest message the server takes */
  readonly maxPayload: number;
  /** false while the connection is down (appends are refused at once then) */
  connected(): boolean;
  close(): Promise<void>;
}

export interface EngineOptions {
  settings: ClusterLogSettings;
  /** the log's byte budget (FLUX_RAW_MAX_BYTES), shared by the partitions' streams */
  maxBytes: number;
  logger: Logger;
}

const description = (partitions: number) => `FLUX uplink log, partitions=${partitions}`;

export async function openEngine({ settings, maxBytes, logger }: EngineOptions): Promise<Engine> {
  const names = namesOf(settings.name);
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: settings.servers, name: `flux-${process.pid}`, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 500, timeout: 5000 });
  } catch (err) {
    throw new ConfigError('FLUX_NATS_URL', `FLUX_NATS_URL: cannot reach NATS at ${settings.servers.join(',')} (${(err as Error).message})`);
  }
  const jsm = await jetstreamManager(nc).catch(async (err: Error) => {
    await nc.close();
    throw new ConfigError('FLUX_NATS_URL', `FLUX_NATS_URL: JetStream is not enabled on ${settings.servers.join(',')} (${err.message}); start nats-server with -js`);
  });
  const js = jetstream(nc);
  const stream = { partitions: settings.partitions, maxBytes: Math.floor(maxBytes / settings.partitions), replicas: settings.replicas };
  let leases: KV;
  try {
    await ensureStreams(jsm, names, stream);
    leases = await new Kvm(js).create(names.bucket, { ttl: settings.leaseMs, history: 1, storage: StorageType.File, replicas: settings.replicas });
  } catch (err) {
    await nc.close();
    throw err;
  }
  const bucket = await jsm.streams.info(`KV_${names.bucket}`);
  if (Math.round(bucket.config.max_age / 1e6) !== settings.leaseMs) {
    await nc.close();
    throw new ConfigError('FLUX_LOG_LEASE', `FLUX_LOG_LEASE=${settings.leaseMs}ms, but this cluster's nodes use ${Math.round(bucket.config.max_age / 1e6)}ms (bucket ${names.bucket}): every node must use the same`);
  }

  let up = true;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        up = false;
        logger.warn({ server: s.server }, 'cluster log: lost the connection to NATS; uplinks are refused (log_unavailable) until it is back');
      } else if (s.type === 'reconnect') {
        up = true;
        logger.info({ server: s.server }, 'cluster log: connected to NATS again');
        // a restarted server may have come back without the stream (it was deleted, or its storage lost)
        await ensureStreams(jsm, names, stream).catch((err: Error) => logger.error({ err: err.message }, 'cluster log: the stream could not be checked after the reconnect'));
      }
    }
  })();

  return {
    nc,
    js,
    jsm,
    leases,
    names,
    partitions: settings.partitions,
    maxPayload: nc.info?.max_payload ?? 1024 * 1024,
    connected: () => up && !nc.isClosed(),
    async close() {
      if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
    },
  };
}

/** Creates the partitions' streams, or checks that they match (partitions) and updates their budget. */
async function ensureStreams(jsm: JetStreamManager, names: Names, { partitions, maxBytes, replicas }: { partitions: number; maxBytes: number; replicas: number }): Promise<void> {
  // one more partition's stream than configured means the cluster was made with more
  const beyond = await jsm.streams.info(names.stream(partitions)).catch(() => undefined);
  if (beyond) throw mismatch(partitions, /partitions=(\d+)/.exec(beyond.config.description ?? '')?.[1] ?? `more than ${partitions}`, names.stream(partitions));
  for (let p = 0; p < partitions; p++) {
    const config = {
      name: names.stream(p),
      subjects: [names.subject(p)],
      description: description(partitions),
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      // past the budget the stream refuses (log_full) rather than drop what no node has handled yet;
      // handled messages are purged by the partition's holder (runtime/cluster-log/janitor.ts)
      discard: DiscardPolicy.New,
      max_bytes: maxBytes,
      duplicate_window: 120e9,
      num_replicas: replicas,
    };
    let info;
    try {
      info = await jsm.streams.info(config.name);
    } catch (err) {
      if (!/stream not found/i.test((err as Error).message)) throw err;
      await jsm.streams.add(config);
      continue;
    }
    const had = /partitions=(\d+)/.exec(info.config.description ?? '')?.[1];
    if (had !== undefined && Number(had) !== partitions) throw mismatch(partitions, had, config.name);
    if (info.config.max_bytes !== maxBytes || info.config.discard !== DiscardPolicy.New) {
      await jsm.streams.update(config.name, { ...info.config, max_bytes: maxBytes, discard: DiscardPolicy.New });
    }
  }
}

const mismatch = (partitions: number, had: string, stream: string) =>
  new ConfigError('FLUX_LOG_PARTITIONS', `FLUX_LOG_PARTITIONS=${partitions}, but this cluster was made with ${had} partitions (stream ${stream}): every node of a cluster must use the same`);
