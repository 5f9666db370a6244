/**
 * In-process device access for tests: a real registry (SQLite in a temp dir), the device bus, the
 * broker on port 0 (plus MQTT over WebSocket on a plain HTTP server, MQTTS when asked) and the TCP
 * ingress. Log lines are collected so tests can assert on the logged reasons.
 */
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { loadSettings } from '../../settings.ts';
import type { Product } from '../../runtime/registry/index.ts';
import type { DeviceBus, UplinkMessage, StatusEvent } from '../../runtime/bus/index.ts';
import { createBroker, type Broker, type BrokerOptions } from '../../runtime/broker/index.ts';
import { createIngress, createPresence, type Ingress, type IngressDeps, type Presence, type TcpIngressOptions } from '../../runtime/ingress/index.ts';
import { tempDir } from '../helpers/flux-process.ts';
import { testContext } from '../helpers/context.ts';
import type { FluxContext } from '../../runtime/app/context.ts';

export const ADMIN_TOKEN = 'access-test-admin-token-0123456789';

/** MQTT protocol versions the broker is tested with: 4 = 3.1.1, 5 = MQTT 5. */
export const MQTT_VERSIONS: (4 | 5)[] = [4, 5];

export interface Access {
  ctx: FluxContext;
  presence: Presence;
  bus: DeviceBus;
  broker: Broker;
  ingress: Ingress;
  http: http.Server;
  httpPort: number;
  product: Product;
  /** device id → secret */
  secrets: Record<string, string>;
  uplinks: UplinkMessage[];
  statuses: StatusEvent[];
  logs: Record<string, unknown>[];
  mqttUrl: string;
  /** MQTT client for a device of the product (username = device id, password = its secret) */
  device(id: string, opts?: IClientOptions): Promise<MqttClient>;
  platform(opts?: IClientOptions): Promise<MqttClient>;
  stop(): Promise<void>;
}

export interface AccessOptions {
  broker?: BrokerOptions;
  ingress?: TcpIngressOptions;
  env?: Record<string, string>;
  busHighWater?: number;
  /** devices to create: id → secret (default dev-1, dev-2, dev-off (disabled)) */
  devices?: Record<string, string>;
  transport?: Record<string, unknown>;
  /** what the TCP ingress and the downlink use of the plugin host (none by default) */
  plugins?: IngressDeps['plugins'];
}

export async function startAccess(opts: AccessOptions = {}): Promise<Access> {
  const dir = tempDir('flux-broker-');
  const settings = loadSettings({ FLUX_DATA_DIR: dir, FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: ADMIN_TOKEN, FLUX_LOG_LEVEL: 'debug', ...opts.env });
  const { ctx, logs } = await testContext(settings, { busHighWater: opts.busHighWater });
  const { registry, bus } = ctx;
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const httpPort = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
  const product = await registry.products.create({ key: 'thermo', name: 'Thermometer', transport: opts.transport ?? {} });
  await registry.products.create({ key: 'other', name: 'Other' });
  const secrets: Record<string, string> = {};
  for (const [id, secret] of Object.entries(opts.devices ?? { 'dev-1': 'secret-dev-1-0123456789', 'dev-2': 'secret-dev-2-0123456789', 'dev-off': 'secret-dev-off-012345678' })) {
    await registry.devices.create({ id, product_id: product.id, secret, enabled: id !== 'dev-off' });
    secrets[id] = secret;
  }
  const presence = createPresence(ctx);
  const broker = createBroker(ctx, presence, { httpServer: server, ...opts.broker });
  await broker.start();
  const ingress = createIngress(ctx, { presence, broker, plugins: opts.plugins }, { syncIntervalMs: 0, ...opts.ingress });
  await ingress.start();
  const uplinks: UplinkMessage[] = [];
  const statuses: StatusEvent[] = [];
  const owner = {};
  bus.on('uplink', owner, (u) => void uplinks.push(u));
  bus.on('status', owner, (s) => void statuses.push(s));
  const mqttUrl = `mqtt://127.0.0.1:${broker.port()}`;
  const clients: MqttClient[] = [];
  const connect = (o: IClientOptions) =>
    new Promise<MqttClient>((resolve, reject) => {
      const c = mqtt.connect(mqttUrl, { reconnectPeriod: 0, connectTimeout: 5000, ...o });
      clients.push(c);
      c.once('connect', () => resolve(c));
      c.once('error', reject);
      c.once('close', () => reject(new Error('closed before CONNACK')));
    });
  return {
    ctx, presence, bus, broker, ingress, http: server, httpPort, product, secrets, uplinks, statuses, logs, mqttUrl,
    device: (id, o = {}) => connect({ username: id, password: secrets[id] ?? 'x', clientId: `${id}/${Math.random().toString(16).slice(2, 8)}`, ...o }),
    platform: (o = {}) => connect({ username: 'dashboard', password: ADMIN_TOKEN, ...o }),
    async stop() {
      for (const c of clients) c.end(true);
      await ingress.stop();
      await broker.stop();
      await presence.flush();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await registry.stop();
    },
  };
}

/** Resolves when `check()` is truthy; rejects with `what` after `ms`. */
export async function until<T>(check: () => T | undefined | false | null, what: string, ms = 5000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs mosquitto_pub / mosquitto_sub to completion (killed after `ms`). */
export function run(cmd: string, args: string[], ms = 8000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A long-running child (mosquitto_sub) whose output is collected. */
export function spawnCollect(cmd: string, args: string[]) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => (out.stdout += d));
  child.stderr.on('data', (d) => (out.stderr += d));
  return { child, out, kill: () => child.kill('SIGKILL') };
}

/** Waits for a message on `topic` (or any topic matching `filter`) on a subscribed client. */
export function nextMessage(c: MqttClient, match: (topic: string) => boolean, ms = 3000): Promise<{ topic: string; payload: Buffer; packet: any }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      c.off('message', on);
      reject(new Error('no message within ' + ms + ' ms'));
    }, ms);
    const on = (topic: string, payload: Buffer, packet: any) => {
      if (!match(topic)) return;
      clearTimeout(timer);
      c.off('message', on);
      resolve({ topic, payload, packet });
    };
    c.on('message', on);
  });
}
