/**
 * Test parts for cluster mode: a Redis server of the test's own (started on a free port, killed
 * after; the shared Redis on 6379 is never touched), a PostgreSQL database of its own (`cluster_*`,
 * dropped after), and FLUX nodes as real processes sharing both.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import { startFlux, tempDir, TEST_TOKEN, type FluxProcess } from '../helpers/flux-process.ts';
import { createFlux } from '../../runtime/app/index.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { loadSettings } from '../../settings.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';

const run = promisify(execFile);

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

export interface TestRedis {
  port: number;
  url: string;
  cli(...args: string[]): Promise<string>;
  /** SIGKILL, then a fresh empty server on the same port (a restart that lost everything) */
  restart(): Promise<void>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** every redis-server the tests started and that still runs: killed if the test process exits first (one listener for all) */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** A redis-server of this test's own on a free port, nothing kept on disk. */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const cli = async (...args: string[]) => (await run('redis-cli', ['-p', String(port), ...args])).stdout.trim();
  const launch = async () => {
    const c = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    child = c;
    live.add(c);
    c.once('exit', () => live.delete(c));
    for (let i = 0; i < 100; i++) {
      if ((await cli('ping').catch(() => '')) === 'PONG') return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server on ${port} did not answer`);
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    cli,
    kill,
    async restart() {
      await kill();
      await launch();
    },
    stop: kill,
  };
}

/** a FLUX process and the node id it was started with */
export type TestNode = FluxProcess & { id: string };

export interface TestCluster {
  redis: TestRedis;
  db: TestDatabase;
  /** in the order of their ids: node-a, node-b, … */
  nodes: TestNode[];
  env: Record<string, string>;
  /** starts one more node sharing Redis and the database */
  add(id: string, extra?: Record<string, string>): Promise<TestNode>;
  stop(): Promise<void>;
}

export const HEARTBEAT_MS = 1500;

/**
 * Tables, the first admin user: what the first start of FLUX makes in a new database, made once by
 * an in-process FLUX (no Redis, no flows), so that the nodes can then start together.
 */
async function prepareDatabase(env: Record<string, string>): Promise<void> {
  const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN, FLUX_DB_URL: env.FLUX_DB_URL!, FLUX_TS_URL: env.FLUX_TS_URL! });
  const flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
  await flux.start();
  await flux.stop();
}

/** `count` FLUX nodes (node-a, node-b, …) started together on one Redis and one PostgreSQL database. */
export async function startCluster(count: number, env: Record<string, string> = {}, dbPrefix = 'cluster'): Promise<TestCluster> {
  const redis = await startRedis();
  const db = await createTestDatabase('postgres', dbPrefix);
  const shared = {
    FLUX_REDIS_URL: redis.url,
    FLUX_REDIS_PREFIX: `t${process.pid}:`,
    FLUX_CREDENTIAL_SECRET: 'cluster-test-credential-secret-0123',
    FLUX_DB_URL: db.url,
    FLUX_TS_URL: db.url,
    FLUX_CLUSTER_HEARTBEAT_MS: String(HEARTBEAT_MS),
    FLUX_LOG_LEVEL: 'warn',
    ...env,
  };
  const nodes: TestNode[] = [];
  const add = async (id: string, extra: Record<string, string> = {}) => {
    const n = Object.assign(await startFlux({ ...shared, FLUX_NODE_ID: id, ...extra }, { timeoutMs: 90_000 }), { id });
    nodes.push(n);
    nodes.sort((x, y) => x.id.localeCompare(y.id));
    return n;
  };
  try {
    await prepareDatabase(shared);
    await Promise.all(['node-a', 'node-b', 'node-c', 'node-d'].slice(0, count).map((id) => add(id)));
  } catch (err) {
    for (const n of nodes) await n.stop();
    await redis.stop();
    await db.drop();
    throw err;
  }
  return {
    redis,
    db,
    nodes,
    env: shared,
    add,
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
      await redis.stop();
      await db.drop();
    },
  };
}

/** A product and `ids` devices registered through `node`; answers each device's secret. */
export async function registerDevices(node: FluxProcess, product: string, ids: string[]): Promise<Record<string, string>> {
  const p = await node.api('POST', '/api/products', { key: product, name: product });
  if (p.status !== 201) throw new Error(`product: ${p.status} ${JSON.stringify(p.body)}`);
  const secrets: Record<string, string> = {};
  for (const id of ids) {
    const d = await node.api('POST', '/api/devices', { id, product_id: product });
    if (d.status !== 201) throw new Error(`device ${id}: ${d.status} ${JSON.stringify(d.body)}`);
    secrets[id] = d.body.secret;
  }
  return secrets;
}

export function connect(node: FluxProcess, opts: IClientOptions): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${node.mqtt}`, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
}

export async function until<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The editor's flows API of a node (GET, or POST a deploy: Node-RED's v2 format, a full deploy unless `headers` say otherwise). */
export function editorFlows(node: FluxProcess, method: string, body?: unknown, headers: Record<string, string> = { 'Node-RED-Deployment-Type': 'full' }): Promise<Response> {
  return fetch(`${node.url}/editor/flows`, { method, headers: { authorization: `Bearer ${node.token}`, 'content-type': 'application/json', 'Node-RED-API-Version': 'v2', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
}
