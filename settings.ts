/**
 * @module settings — FLUX and Node-RED settings, read from environment variables.
 *
 * One table (`SETTINGS`) lists every variable; the README's configuration table mirrors it (a test checks)
 * (the README's configuration table is the contract). An invalid value throws a ConfigError whose
 * message is the single line the CLI prints before exiting non-zero.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from './runtime/errors/index.ts';

export const PROJECT_DIR = path.dirname(fileURLToPath(import.meta.url));

export type DbDialect = 'sqlite' | 'mysql' | 'postgres';
export type TsDialect = DbDialect | 'tdengine';

export interface DbUrl {
  dialect: DbDialect;
  /** sqlite: absolute file path; others: the URL as given (mariadb:// normalised to mysql://). */
  url: string;
  /** sqlite only */
  file?: string;
}

export interface TsUrl {
  dialect: TsDialect;
  url: string;
  file?: string;
}

export interface FluxSettings {
  host: string;
  httpPort: number;
  mqttPort: number;
  mqttsPort: number;
  tlsCert?: string;
  tlsKey?: string;
  dataDir: string;
  db: DbUrl;
  ts: TsUrl;
  pluginsDir: string;
  /** undefined: generated on first start and stored in the data dir. */
  adminToken?: string;
  /** the first admin user's password (FLUX_ADMIN_PASSWORD); undefined: generated and printed once */
  adminPassword?: string;
  /** how long a login session (POST /api/auth/login) lasts (ms) */
  sessionTtlMs: number;
  /** multi-node mode (runtime/cluster): shared broker state, presence and node list on this Redis */
  redisUrl?: string;
  /**
   * Node-RED's `credentialSecret`: the key the flows' credentials are encrypted with. Required in
   * cluster mode (every node decrypts the credentials a deploy on any node stored); undefined: on one
   * node, Node-RED generates a key and keeps it in the data dir.
   */
  credentialSecret?: string;
  /** cluster settings; used only with redisUrl */
  cluster: {
    /** this node's id; undefined: generated at each start from the host name and a random suffix */
    nodeId?: string;
    /** every key and channel FLUX uses in Redis starts with it */
    redisPrefix: string;
    /** liveness period (ms): a node that missed it is dead, and its devices go offline within 2× it */
    heartbeatMs: number;
  };
  logLevel: string;
  /** the ffmpeg binary for camera streams */
  ffmpegPath: string;
  /** on-demand camera streams stop this long after their last viewer (ms) */
  streamIdleMs: number;
  /** all stream recordings together stay under this many bytes */
  streamRecordMaxBytes: number;
  /** length of a recording segment (s) */
  streamRecordSegmentS: number;
  /** the durable uplink log (runtime/uplink-log) */
  uplinkLog: { fsync: 'always' | 'os'; retentionMs: number; maxBytes: number };
  /** how often the Modbus master reads the registry for devices to poll (ms) */
  modbusSyncMs: number;
  /** cluster mode's shared uplink log on NATS JetStream (runtime/cluster-log); undefined: the single-node log in the data dir */
  clusterLog?: ClusterLogSettings;
  /** where flows' `http in` endpoints are served: `/flows` (default) or `/` */
  flowsHttpPrefix: string;
  /** a flow endpoint request without an answer by then gets 504 (FLUX_FLOWS_HTTP_TIMEOUT_MS) */
  flowsHttpTimeoutMs: number;
  /** `flux device in` sends a batch of uplinks at most this often (FLUX_FLOW_BATCH_MS; 0: every event-loop turn) */
  flowBatchMs: number;
  /** where GraphQL's WebSockets are served: a process of their own, FLUX's main thread, or by the cores (FLUX_GRAPHQL_SOCKETS) */
  graphqlSockets: 'auto' | 'process' | 'inline';
}

export interface ClusterLogSettings {
  /** NATS server URLs, comma-separated (FLUX_NATS_URL) */
  servers: string[];
  /** the stream, subjects and buckets are named after it, so that several FLUX clusters can share one NATS */
  name: string;
  /** uplinks are partitioned by device over this many subjects; every node of a cluster must agree */
  partitions: number;
  /** a node that stops renewing its partitions loses them after this long (ms) */
  leaseMs: number;
  /** copies of the stream and the lease bucket in a NATS cluster (1 on a single server) */
  replicas: number;
}

export interface SettingSpec {
  variable: string;
  default: string;
  meaning: string;
}

/** The contract table plus FLUX's operational extras. The README's table mirrors it (a test checks). */
export const SETTINGS: readonly SettingSpec[] = [
  { variable: 'FLUX_HTTP_PORT', default: '1880', meaning: 'HTTP: API, console, Node-RED editor, MQTT over WebSocket at `/mqtt` (0 = any free port)' },
  { variable: 'FLUX_MQTT_PORT', default: '1883', meaning: 'embedded MQTT broker, TCP (0 = any free port)' },
  { variable: 'FLUX_DATA_DIR', default: './data', meaning: 'SQLite files, flows, uploaded plugins, telemetry buffer' },
  { variable: 'FLUX_DB_URL', default: 'sqlite: in the data dir', meaning: 'metadata: `sqlite:PATH`, `mysql://…`, `mariadb://…`, `postgres://…`' },
  { variable: 'FLUX_TS_URL', default: 'sqlite: in the data dir', meaning: 'time series: same schemes, plus `tdengine://user:pass@host:6041/db` (REST)' },
  { variable: 'FLUX_PLUGINS_DIR', default: './plugins/dist', meaning: 'watched folder of `.wasm` protocol plugins (file name = plugin id, a slug: `^[a-z0-9][a-z0-9_-]{0,63}$`; other names are ignored)' },
  { variable: 'FLUX_ADMIN_TOKEN', default: 'generated, stored in the data dir, printed once', meaning: 'break-glass admin bearer token for the API and /api/ws (editor: user `admin` with it as password)' },
  { variable: 'FLUX_ADMIN_PASSWORD', default: 'generated at the first start, printed once', meaning: 'password of the first admin user `admin`, created when there are no users yet (read only then)' },
  { variable: 'FLUX_SESSION_TTL', default: '12h', meaning: 'how long a login session lasts (console, `POST /api/auth/login`)' },
  { variable: 'FLUX_REDIS_URL', default: 'unset', meaning: 'multi-node mode (docs/cluster.md): `redis://[user:pass@]host:port[/db]`; the broker\'s sessions, subscriptions, retained messages and offline queues, cross-node delivery, device presence and the node list are shared there. Unset: one node, nothing to install' },
  { variable: 'FLUX_NODE_ID', default: 'generated at each start', meaning: 'this node\'s id in a cluster (`^[A-Za-z0-9_.-]{1,64}$`); two running nodes cannot share one' },
  { variable: 'FLUX_REDIS_PREFIX', default: '`flux:`', meaning: 'prefix of every key and channel FLUX uses in Redis (several clusters can share one Redis)' },
  { variable: 'FLUX_CLUSTER_HEARTBEAT_MS', default: '5000', meaning: 'node liveness period in ms (500 to 60000): a node silent for it is dead, and its devices are offline on the others within twice it' },
  { variable: 'FLUX_CREDENTIAL_SECRET', default: 'unset (one node: generated in the data dir)', meaning: "key of the flows' credentials (Node-RED's `credentialSecret`, 16 to 1024 characters); required with FLUX_REDIS_URL, the same on every node (docs/security.md \"Flow credentials\")" },
  { variable: 'FLUX_HOST', default: '0.0.0.0', meaning: 'address the HTTP, MQTT and TCP listeners bind to' },
  { variable: 'FLUX_TLS_CERT', default: 'unset', meaning: 'PEM certificate file; with FLUX_TLS_KEY enables MQTTS' },
  { variable: 'FLUX_TLS_KEY', default: 'unset', meaning: 'PEM private key file for MQTTS' },
  { variable: 'FLUX_MQTTS_PORT', default: '8883', meaning: 'MQTT over TLS, when a certificate is set' },
  { variable: 'FLUX_LOG_LEVEL', default: 'info', meaning: 'trace, debug, info, warn, error, fatal or silent' },
  { variable: 'FLUX_FFMPEG', default: 'ffmpeg', meaning: 'the ffmpeg binary camera streams run (docs/streams.md)' },
  { variable: 'FLUX_STREAM_IDLE_S', default: '10', meaning: 'an on-demand camera stream stops this many seconds after its last viewer' },
  { variable: 'FLUX_STREAM_RECORD_MAX_MB', default: '10240', meaning: 'all camera recordings together stay under this size (oldest segments deleted first)' },
  { variable: 'FLUX_STREAM_RECORD_SEGMENT_S', default: '10', meaning: 'length of a recording segment in seconds (the unit retention deletes)' },
  { variable: 'FLUX_LOG_FSYNC', default: 'always', meaning: 'uplink log durability before an acknowledgement: `always` (fdatasync of the group commit before a QoS 1 PUBACK, an HTTP 202 or a TCP frame is processed; survives power loss; unacknowledged uplinks, MQTT QoS 0 and Modbus polls, are synced with the next such group or within 1 s) or `os` (page cache; survives a crash of FLUX, not of the machine)' },
  { variable: 'FLUX_RAW_RETENTION', default: '24h', meaning: 'how long the uplink log keeps raw traffic once processed (`s`, `m`, `h`, `d` suffixes)' },
  { variable: 'FLUX_RAW_MAX_BYTES', default: '1GiB', meaning: 'disk budget of the uplink log (`KiB`, `MiB`, `GiB`); when unprocessed uplinks fill it, new ones are refused' },
  { variable: 'FLUX_FLOWS_HTTP_PREFIX', default: '/flows', meaning: "where flows' `http in` endpoints are served (`/` serves them at the root; paths under /api, /editor, /console, /mqtt are refused at deploy)" },
  { variable: 'FLUX_FLOWS_HTTP_TIMEOUT_MS', default: '30000', meaning: "a request to a flow's `http in` endpoint that the flow has not answered by then gets 504 `flow_timeout` (no `http response` node reached, or the flows were being redeployed); at most 1,000 such requests wait at once (then 503 `flows_busy`)" },
  { variable: 'FLUX_FLOW_BATCH_MS', default: '5', meaning: "`flux device in` sends its batch of uplinks to FLUX's nodes at most every this many ms (0 to 100; 0: at the end of every event-loop turn). An uplink that comes alone leaves at once; under load the uplinks of several turns share a batch, which costs less CPU per uplink and adds at most this much latency (docs/architecture.md \"Batches through Node-RED\")" },
  { variable: 'FLUX_GRAPHQL_SOCKETS', default: 'auto', meaning: "where GraphQL's WebSockets (subscriptions) are served: `process`, a process of their own started on the first one, so that writing results costs the pipeline's thread nothing; `inline`, on FLUX's main thread (one process less, less CPU in all); `auto`, `process` on 2 or more cores, else `inline` (`docs/graphql.md` \"Where the sockets live\")" },
  { variable: 'FLUX_MODBUS_SYNC_MS', default: '5000', meaning: 'how often the Modbus master reads the registry for devices to poll, in ms (docs/modbus.md)' },
  { variable: 'FLUX_NATS_URL', default: 'unset', meaning: 'cluster mode: the shared uplink log on NATS JetStream, `nats://host:4222` (several comma-separated); unset: the single-node log in the data dir (docs/cluster.md "The shared uplink log")' },
  { variable: 'FLUX_NATS_NAME', default: 'flux', meaning: 'cluster mode: the name of the JetStream stream and buckets of this cluster (letters, digits, `_`, `-`)' },
  { variable: 'FLUX_LOG_PARTITIONS', default: '16', meaning: 'cluster mode: uplinks are partitioned by device over this many partitions, each processed in order by one node at a time; the same on every node' },
  { variable: 'FLUX_LOG_LEASE', default: '6s', meaning: "cluster mode: a node that stops renewing its partitions (killed, cut off) loses them to the others after this long" },
  { variable: 'FLUX_NATS_REPLICAS', default: '1', meaning: 'cluster mode: copies of the uplink stream in a NATS cluster (3 survives the loss of a NATS server; 1 on a single server)' },
];

export function parseDuration(variable: string, raw: string | undefined, fallbackMs: number): number {
  if (raw === undefined || raw.trim() === '') return fallbackMs;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m || Number(m[1]) <= 0) throw new ConfigError(variable, `${variable}=${JSON.stringify(raw)} is not a duration (e.g. 90s, 30m, 24h, 7d)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Math.round(Number(m[1]) * unit);
}

export function parseBytes(variable: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const m = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|K|M|G|T)?$/i.exec(raw.trim());
  if (!m || Number(m[1]) <= 0) throw new ConfigError(variable, `${variable}=${JSON.stringify(raw)} is not a size (e.g. 512MiB, 1GiB)`);
  const u = (m[2] ?? 'B').toLowerCase().replace(/i?b$/, '') || 'b';
  const mult = { b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[u as 'b' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

const NODE_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;

const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

export function parsePort(variable: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const s = raw.trim();
  if (!/^\d+$/.test(s) || Number(s) > 65535) {
    throw new ConfigError(variable, `${variable}=${JSON.stringify(raw)} is not a port number (0-65535; 0 = any free port)`);
  }
  return Number(s);
}

function sqliteFile(variable: string, rest: string, dataDir: string, fallbackName: string): string {
  // `sqlite:` alone, `sqlite:relative/file.db`, `sqlite:/abs/file.db` and `sqlite:///abs/file.db` are accepted.
  let p = rest.replace(/^\/\/(?=\/)/, '');
  if (p === '' || p === '//') return path.join(dataDir, fallbackName);
  if (p.includes('\0')) throw new ConfigError(variable, `${variable}: the SQLite path contains a NUL byte`);
  p = decodeURIComponent(p);
  return path.resolve(p);
}

export function parseDbUrl(variable: string, raw: string | undefined, dataDir: string, fallbackName: string, allowTdengine: false): DbUrl;
export function parseDbUrl(variable: string, raw: string | undefined, dataDir: string, fallbackName: string, allowTdengine: true): TsUrl;
export function parseDbUrl(variable: string, raw: string | undefined, dataDir: string, fallbackName: string, allowTdengine: boolean): DbUrl | TsUrl {
  const value = raw?.trim() ?? '';
  if (value === '' || value === 'sqlite:') return { dialect: 'sqlite', url: 'sqlite:', file: path.join(dataDir, fallbackName) };
  const m = /^([a-z][a-z0-9+.-]*):(.*)$/i.exec(value);
  if (!m) throw new ConfigError(variable, `${variable} is not a database URL (expected sqlite:PATH, mysql://, mariadb://, postgres://${allowTdengine ? ' or tdengine://' : ''})`);
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'sqlite') {
    const file = sqliteFile(variable, m[2]!, dataDir, fallbackName);
    return { dialect: 'sqlite', url: `sqlite:${file}`, file };
  }
  const known: Record<string, TsDialect> = { mysql: 'mysql', mariadb: 'mysql', postgres: 'postgres', postgresql: 'postgres', tdengine: 'tdengine' };
  const dialect = known[scheme];
  if (!dialect || (dialect === 'tdengine' && !allowTdengine)) {
    throw new ConfigError(variable, `${variable}: unsupported scheme '${scheme}:' (use sqlite:, mysql://, mariadb://, postgres://${allowTdengine ? ', tdengine://' : ''})`);
  }
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ConfigError(variable, `${variable} cannot be parsed as a URL: ${redact(value)}`);
  }
  if (!u.hostname) throw new ConfigError(variable, `${variable} has no host: ${redact(value)}`);
  if (u.port && (Number(u.port) < 1 || Number(u.port) > 65535)) throw new ConfigError(variable, `${variable} has an invalid port: ${redact(value)}`);
  if (dialect !== 'tdengine' && u.pathname.replace(/^\//, '') === '') throw new ConfigError(variable, `${variable} names no database (…/DBNAME): ${redact(value)}`);
  if (scheme === 'mariadb') u.protocol = 'mysql:';
  if (scheme === 'postgresql') u.protocol = 'postgres:';
  return { dialect, url: u.toString() };
}

/** A URL with its password replaced, for logs and error lines. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
  }
}

/** Reads FLUX settings from an environment (process.env by default). Throws ConfigError. */
export function loadSettings(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): FluxSettings {
  const dataDir = path.resolve(cwd, env.FLUX_DATA_DIR?.trim() || './data');
  const logLevel = (env.FLUX_LOG_LEVEL?.trim() || 'info').toLowerCase();
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError('FLUX_LOG_LEVEL', `FLUX_LOG_LEVEL=${JSON.stringify(env.FLUX_LOG_LEVEL)} is not one of ${[...LOG_LEVELS].join(', ')}`);
  const adminToken = env.FLUX_ADMIN_TOKEN?.trim() || undefined;
  if (adminToken !== undefined && adminToken.length < 16) {
    throw new ConfigError('FLUX_ADMIN_TOKEN', 'FLUX_ADMIN_TOKEN is shorter than 16 characters; use a long random value (or unset it to have one generated)');
  }
  const adminPassword = env.FLUX_ADMIN_PASSWORD || undefined;
  if (adminPassword !== undefined && (adminPassword.length < 8 || adminPassword.length > 1024)) {
    throw new ConfigError('FLUX_ADMIN_PASSWORD', 'FLUX_ADMIN_PASSWORD must have 8 to 1024 characters');
  }
  const tlsCert = env.FLUX_TLS_CERT?.trim() || undefined;
  const tlsKey = env.FLUX_TLS_KEY?.trim() || undefined;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new ConfigError(tlsCert ? 'FLUX_TLS_KEY' : 'FLUX_TLS_CERT', 'FLUX_TLS_CERT and FLUX_TLS_KEY must be set together');
  }
  const redisUrl = env.FLUX_REDIS_URL?.trim() || undefined;
  if (redisUrl !== undefined && !/^rediss?:\/\/[^/]/.test(redisUrl)) {
    throw new ConfigError('FLUX_REDIS_URL', `FLUX_REDIS_URL is not a redis:// URL: ${redact(redisUrl)}`);
  }
  const credentialSecret = env.FLUX_CREDENTIAL_SECRET?.trim() || undefined;
  if (credentialSecret !== undefined && (credentialSecret.length < 16 || credentialSecret.length > 1024)) throw new ConfigError('FLUX_CREDENTIAL_SECRET', 'FLUX_CREDENTIAL_SECRET must have 16 to 1024 characters');
  if (redisUrl !== undefined && credentialSecret === undefined) throw new ConfigError('FLUX_CREDENTIAL_SECRET', "FLUX_CREDENTIAL_SECRET is required in cluster mode (FLUX_REDIS_URL): the same value on every node, the key of the flows' credentials");
  const nodeId = env.FLUX_NODE_ID?.trim() || undefined;
  if (nodeId !== undefined && !NODE_ID_RE.test(nodeId)) throw new ConfigError('FLUX_NODE_ID', `FLUX_NODE_ID=${JSON.stringify(nodeId.slice(0, 80))} is not a node id (letters, digits, _ . -, at most 64)`);
  const redisPrefix = env.FLUX_REDIS_PREFIX?.trim() ?? 'flux:';
  if (!/^[A-Za-z0-9_.:-]{0,64}$/.test(redisPrefix)) throw new ConfigError('FLUX_REDIS_PREFIX', `FLUX_REDIS_PREFIX=${JSON.stringify(redisPrefix.slice(0, 80))} may hold letters, digits and _ . : - only (at most 64)`);
  const positive = (variable: string, fallback: number, max: number) => {
    const raw = env[variable]?.trim();
    if (!raw) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) throw new ConfigError(variable, `${variable}=${JSON.stringify(raw)} is not a whole number from 1 to ${max}`);
    return Number(raw);
  };
  return {
    host: env.FLUX_HOST?.trim() || '0.0.0.0',
    httpPort: parsePort('FLUX_HTTP_PORT', env.FLUX_HTTP_PORT, 1880),
    mqttPort: parsePort('FLUX_MQTT_PORT', env.FLUX_MQTT_PORT, 1883),
    mqttsPort: parsePort('FLUX_MQTTS_PORT', env.FLUX_MQTTS_PORT, 8883),
    tlsCert: tlsCert && path.resolve(cwd, tlsCert),
    tlsKey: tlsKey && path.resolve(cwd, tlsKey),
    dataDir,
    db: parseDbUrl('FLUX_DB_URL', env.FLUX_DB_URL, dataDir, 'flux.db', false),
    ts: parseDbUrl('FLUX_TS_URL', env.FLUX_TS_URL, dataDir, 'telemetry.db', true),
    pluginsDir: path.resolve(cwd, env.FLUX_PLUGINS_DIR?.trim() || path.join(PROJECT_DIR, 'plugins', 'dist')),
    adminToken,
    adminPassword,
    sessionTtlMs: parseDuration('FLUX_SESSION_TTL', env.FLUX_SESSION_TTL, 12 * 3_600_000),
    redisUrl,
    credentialSecret,
    cluster: { nodeId, redisPrefix, heartbeatMs: parseMs('FLUX_CLUSTER_HEARTBEAT_MS', env.FLUX_CLUSTER_HEARTBEAT_MS, 5000, 500, 60_000) },
    logLevel,
    ffmpegPath: env.FLUX_FFMPEG?.trim() || 'ffmpeg',
    streamIdleMs: positive('FLUX_STREAM_IDLE_S', 10, 86_400) * 1000,
    streamRecordMaxBytes: positive('FLUX_STREAM_RECORD_MAX_MB', 10_240, 100_000_000) * 1024 * 1024,
    streamRecordSegmentS: positive('FLUX_STREAM_RECORD_SEGMENT_S', 10, 600),
    uplinkLog: {
      fsync: parseChoice('FLUX_LOG_FSYNC', env.FLUX_LOG_FSYNC, ['always', 'os'] as const),
      retentionMs: parseDuration('FLUX_RAW_RETENTION', env.FLUX_RAW_RETENTION, 24 * 3_600_000),
      maxBytes: parseBytes('FLUX_RAW_MAX_BYTES', env.FLUX_RAW_MAX_BYTES, 1024 ** 3),
    },
    flowsHttpPrefix: parseHttpPrefix(env.FLUX_FLOWS_HTTP_PREFIX),
    flowsHttpTimeoutMs: parseMs('FLUX_FLOWS_HTTP_TIMEOUT_MS', env.FLUX_FLOWS_HTTP_TIMEOUT_MS, 30_000, 100, 3_600_000),
    flowBatchMs: parseMs('FLUX_FLOW_BATCH_MS', env.FLUX_FLOW_BATCH_MS, 5, 0, 100),
    graphqlSockets: parseChoice('FLUX_GRAPHQL_SOCKETS', env.FLUX_GRAPHQL_SOCKETS, ['auto', 'process', 'inline'] as const),
    modbusSyncMs: parseMs('FLUX_MODBUS_SYNC_MS', env.FLUX_MODBUS_SYNC_MS, 5000, 100, 3_600_000),
    clusterLog: parseClusterLog(env, positive),
  };
}

function parseClusterLog(env: NodeJS.ProcessEnv, positive: (variable: string, fallback: number, max: number) => number): ClusterLogSettings | undefined {
  const raw = env.FLUX_NATS_URL?.trim();
  if (!raw) return undefined;
  const servers = raw.split(',').map((s) => s.trim());
  for (const s of servers) {
    if (!/^(nats|tls):\/\/[^/\s]+$/.test(s)) throw new ConfigError('FLUX_NATS_URL', `FLUX_NATS_URL is not a list of nats://host:port URLs: ${redact(s)}`);
  }
  const name = env.FLUX_NATS_NAME?.trim() || 'flux';
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(name)) throw new ConfigError('FLUX_NATS_NAME', `FLUX_NATS_NAME=${JSON.stringify(env.FLUX_NATS_NAME)} must be 1 to 32 letters, digits, _ or -`);
  const leaseMs = parseDuration('FLUX_LOG_LEASE', env.FLUX_LOG_LEASE, 6000);
  if (leaseMs < 1000 || leaseMs > 600_000) throw new ConfigError('FLUX_LOG_LEASE', `FLUX_LOG_LEASE=${JSON.stringify(env.FLUX_LOG_LEASE)} must be from 1s to 10m`);
  return { servers, name, partitions: positive('FLUX_LOG_PARTITIONS', 16, 1024), leaseMs, replicas: positive('FLUX_NATS_REPLICAS', 1, 5) };
}

function parseHttpPrefix(raw: string | undefined): string {
  const v = raw?.trim() || '/flows';
  if (v === '/') return v;
  if (!/^(\/[A-Za-z0-9_.~-]+)+$/.test(v)) throw new ConfigError('FLUX_FLOWS_HTTP_PREFIX', `FLUX_FLOWS_HTTP_PREFIX=${JSON.stringify(raw)} is not a path like /flows (letters, digits, _ . ~ -)`);
  if (['/api', '/editor', '/console', '/mqtt'].some((r) => v === r || v.startsWith(r + '/'))) throw new ConfigError('FLUX_FLOWS_HTTP_PREFIX', `FLUX_FLOWS_HTTP_PREFIX=${v} is under a path FLUX serves itself`);
  return v;
}

/** One of `choices` (the first when unset). */
function parseChoice<T extends string>(variable: string, raw: string | undefined, choices: readonly T[]): T {
  const v = raw?.trim().toLowerCase() || choices[0]!;
  if (!(choices as readonly string[]).includes(v)) throw new ConfigError(variable, `${variable}=${JSON.stringify(raw)} is not ${choices.map((c) => `'${c}'`).join(' or ')}`);
  return v as T;
}

function parseMs(variable: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw.trim() === '') return fallback;
  const s = raw.trim();
  if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max) throw new ConfigError(variable, `${variable}=${JSON.stringify(raw)} is not a number of milliseconds from ${min} to ${max}`);
  return Number(s);
}

/** A user Node-RED's editor knows: only admins get one (permissions `*`). */
export interface EditorUser {
  username: string;
  permissions: '*';
}

/** Node-RED's `adminAuth` functions, backed by FLUX's users (runtime/flow-engine/editor-auth.ts). */
export interface EditorAuth {
  users(username: string): Promise<EditorUser | null>;
  authenticate(username: string, password: string): Promise<EditorUser | null>;
  tokens(token: string): Promise<EditorUser | null>;
}

/** Node-RED's own settings, derived from FLUX's. `flux` (the nodes' typed handle) reaches our nodes as `RED.settings.flux`. */
export interface NodeRedSettingsInput {
  userDir: string;
  editorAuth: EditorAuth;
  /** the typed handle FLUX nodes get (runtime/flow-engine `FluxNodeHandle`) */
  flux: unknown;
  /** receives Node-RED's log records */
  logHandler: (record: { level: number; msg: unknown; type?: string; id?: string; name?: string; event?: string; user?: string; ip?: string; path?: string }) => void;
  /** where flows' http in endpoints are served (FLUX_FLOWS_HTTP_PREFIX) */
  httpNodeRoot?: string;
  /** FLUX_CREDENTIAL_SECRET; undefined: Node-RED generates a key in the data dir */
  credentialSecret?: string;
}

const themeFile = (name: string) => path.join(PROJECT_DIR, 'runtime', 'flow-engine', 'theme', name);

export function nodeRedSettings(input: NodeRedSettingsInput): Record<string, unknown> {
  return {
    userDir: input.userDir,
    flowFile: 'flows.json',
    flowFilePretty: true,
    httpAdminRoot: '/editor',
    httpNodeRoot: input.httpNodeRoot ?? '/flows',
    nodesDir: [path.join(PROJECT_DIR, 'nodes')],
    // No `nodesExcludes`: the whole standard palette loads, so flows imported from elsewhere work.
    // Its heavy libraries (got, cheerio, mqtt, …) load when a node first uses them
    // (runtime/flow-engine/node-red-libraries.ts), so the core nodes the default flow does not use
    // cost ~2.6 MB at idle (24 MB before); `disableEditor` would save ~2.5 MB (docs/operations.md
    // "Memory"). Neither is worth a palette or an editor users cannot trust.
    // Only admins use the editor: its login form takes an admin user's name and password (or the
    // break-glass user "admin" with the admin token); its admin API also takes an admin's API token
    // as `Authorization: Bearer`.
    adminAuth: { type: 'credentials', ...input.editorAuth },
    flux: input.flux,
    // the key of the flows' credentials (docs/security.md "Flow credentials")
    ...(input.credentialSecret ? { credentialSecret: input.credentialSecret } : {}),
    functionExternalModules: false,
    externalModules: { palette: { allowInstall: false }, modules: { allowInstall: false } },
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false },
    runtimeState: { enabled: false, ui: false },
    // FLUX's look: its logo on the login dialog, in the header and as the tab icon; a title and a
    // sign-in hint in the login dialog (runtime/flow-engine/theme).
    editorTheme: {
      page: { title: 'FLUX IOT · flows', favicon: themeFile('flux-logo.svg'), css: [themeFile('editor.css')], scripts: [themeFile('editor.js'), themeFile('http-auth.js')] },
      header: { title: 'FLUX IOT', image: themeFile('flux-logo.svg') },
      login: { image: themeFile('flux-logo.svg') },
      tours: false,
      projects: { enabled: false },
    },
    logging: {
      console: { level: 'off' },
      // audit: flow deploys (`flows.set`) reach FLUX's audit log through the handler.
      flux: { level: 'info', metrics: false, audit: true, handler: () => input.logHandler },
    },
  };
}
