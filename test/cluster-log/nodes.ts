/**
 * Cluster-log test parts: in-process nodes (the cluster log module with a bus of its own) on a real
 * NATS, names unique per run (and deleted afterwards), and a nats-server of the test's own for
 * outages.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { loadSettings } from '../../settings.ts';
import { createClusterLogModule } from '../../runtime/cluster-log/index.ts';
import { createDeviceBus, type DeviceBus, type UplinkMessage } from '../../runtime/bus/index.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { createMetrics } from '../../runtime/metrics/index.ts';
import type { UplinkLogModule, LogRefusedError } from '../../runtime/uplink-log/index.ts';

export const NATS_URL = process.env.FLUX_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

/** A cluster name no other run uses (streams and buckets are named after it). */
export const uniqueName = (what: string) => `t${what}${process.pid}${Math.floor(Math.random() * 1e6).toString(36)}`;

export interface TestNode {
  m: UplinkLogModule;
  bus: DeviceBus;
  logs: Record<string, any>[];
}

export async function startNode(name: string, env: Record<string, string> = {}, url = NATS_URL, tidyEveryMs?: number): Promise<TestNode> {
  const logs: Record<string, any>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const logger = createLogger({ level: 'debug', destination: sink });
  const settings = loadSettings({ FLUX_NATS_URL: url, FLUX_NATS_NAME: name, FLUX_LOG_LEASE: '2s', FLUX_LOG_PARTITIONS: '8', FLUX_DATA_DIR: os.tmpdir(), ...env });
  const bus = createDeviceBus(logger);
  const m = createClusterLogModule({ settings, cluster: settings.clusterLog!, bus, logger, metrics: createMetrics(), tidyEveryMs });
  await m.start();
  return { m, bus, logs };
}

export function uplink(deviceId: string, n: number): UplinkMessage {
  return { id: `${deviceId}-${n}-${Math.random().toString(36).slice(2, 8)}`, deviceId, productId: 'p1', productKey: 'meter', type: 'properties', ts: Date.now(), payload: Buffer.from(JSON.stringify({ values: { n } })), topic: `/meter/${deviceId}/properties/report`, transport: 'mqtt', logSeq: undefined };
}

/** Appends through the journal and answers the refusal (null: acknowledged). */
export const accept = (node: TestNode, up: UplinkMessage) => new Promise<LogRefusedError | null>((resolve) => node.m.journal.accept(up, resolve));

/** Deletes this run's streams and bucket of cluster `name`. */
export async function dropCluster(name: string, url = NATS_URL): Promise<void> {
  const nc = await connect({ servers: url.replace('nats://', '') });
  const jsm = await jetstreamManager(nc);
  const mine: string[] = [];
  for await (const s of jsm.streams.names()) if (s.startsWith(`${name}_uplinks_`) || s === `KV_${name}_leases`) mine.push(s);
  for (const s of mine) await jsm.streams.delete(s).catch(() => false);
  await nc.close();
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((p) => fs.existsSync(p));

/** A nats-server of this test's own (JetStream, file storage in a temp dir), for outages and restarts. */
export async function ownNatsServer(): Promise<{ url: string; stop(signal?: NodeJS.Signals): Promise<void>; start(): Promise<void>; dispose(): Promise<void> }> {
  assert.ok(NATS_SERVER, 'the nats-server binary is needed for the outage tests (Debian: apt-get install nats-server)');
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-nats-'));
  let child: ChildProcess | undefined;
  const up = async () => {
    for (let i = 0; i < 100; i++) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => (s.end(), resolve(true)));
        s.on('error', () => resolve(false));
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('nats-server did not listen');
  };
  const self = {
    url: `nats://127.0.0.1:${port}`,
    async start() {
      child = spawn(NATS_SERVER!, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: 'ignore' });
      process.once('exit', () => child?.kill('SIGKILL'));
      await up();
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const c = child;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill(signal);
      await exited;
    },
    /** Kills it and deletes its storage. */
    async dispose() {
      await self.stop('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await self.start();
  return self;
}
