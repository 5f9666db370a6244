/**
 * Cluster mode's shared uplink log (runtime/cluster-log; docs/cluster.md "The shared uplink log"):
 * the two candidate engines side by side, then FLUX's own appender and partition consumers.
 *
 * Engines: append + acknowledgement, `WINDOW` appends in flight, 120-byte uplinks: NATS JetStream
 * (the nats-server on :4222, file storage) one uplink per message and 16 per message (the group
 * commit), and Redis Streams XADD, pipelined, on a redis-server of the bench's own with its
 * append-only file (`appendfsync everysec` and `always`; without one a Redis restart loses the
 * stream). Redis is spoken to by a minimal pipelined RESP writer (no client library), which
 * flatters Redis if anything. Then FLUX's cluster log paced at 10k uplinks/s (acknowledgement
 * latency, CPU per uplink) and its partition consumers draining a backlog into a bus.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import type { Bench, BenchRow } from './types.ts';
import { createClusterLogModule } from '../runtime/cluster-log/index.ts';
import { createDeviceBus } from '../runtime/bus/index.ts';
import { createLogger } from '../runtime/log/index.ts';
import { createMetrics } from '../runtime/metrics/index.ts';
import { loadSettings } from '../settings.ts';

const NATS = process.env.FLUX_BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const WINDOW = 64;
const load = () => `load ${os.loadavg()[0]!.toFixed(1)}`;
const pct = (a: number[], p: number) => a.sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))] ?? NaN;

/** `count` appends, WINDOW in flight: appends/s and the p99 of each one's acknowledgement. */
async function windowed(count: number, append: (i: number) => Promise<unknown>): Promise<{ rate: number; p99: number }> {
  const lat: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (next < count) {
        const i = next++;
        const at = performance.now();
        await append(i);
        lat.push(performance.now() - at);
      }
    }),
  );
  return { rate: count / ((performance.now() - t0) / 1000), p99: pct(lat, 0.99) };
}

async function jetStreamRow(count: number, perMessage: number): Promise<BenchRow> {
  const nc = await connect({ servers: NATS.replace('nats://', '') });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const name = `bench_engine_${process.pid}_${perMessage}`;
  await jsm.streams.add({ name, subjects: [`${name}.>`], storage: StorageType.File });
  try {
    const payload = Buffer.alloc(120 * perMessage, 7);
    const r = await windowed(Math.ceil(count / perMessage), (i) => js.publish(`${name}.up.${i % 16}`, payload, { msgID: `m${i}` }));
    return { group: 'cluster log', name: `engine: NATS JetStream (file), ${perMessage} uplink${perMessage > 1 ? 's' : ''} per message, ${WINDOW} in flight`, value: r.rate * perMessage, unit: 'uplinks/s', note: `p99 ${r.p99.toFixed(1)} ms per message; ${load()}` };
  } finally {
    await jsm.streams.delete(name).catch(() => false);
    await nc.close();
  }
}

/** XADD over one connection, pipelined; answers resolve in order (RESP replies come in order). */
async function redisRow(count: number, fsync: 'everysec' | 'always'): Promise<BenchRow> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-bench-redis-'));
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', fsync, '--save', ''], { stdio: 'ignore' });
  try {
    const sock = await (async () => {
      for (let i = 0; i < 100; i++) {
        const s = await new Promise<net.Socket | null>((resolve) => {
          const c = net.connect(port, '127.0.0.1', () => resolve(c));
          c.once('error', () => resolve(null));
        });
        if (s) return s;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('redis-server did not start');
    })();
    sock.setNoDelay(true);
    const waiting: (() => void)[] = [];
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      let at = 0;
      for (;;) {
        const eol = buf.indexOf('\r\n', at);
        if (eol < 0) break;
        let end = eol + 2;
        if (buf[at] === 0x24 /* $ */) {
          end += Number(buf.toString('latin1', at + 1, eol)) + 2;
          if (end > buf.length) break;
        }
        at = end;
        waiting.shift()!();
      }
      buf = buf.subarray(at);
    });
    const payload = Buffer.alloc(120, 7);
    const key = 'bench:uplinks';
    const head = Buffer.from(`*5\r\n$4\r\nXADD\r\n$${key.length}\r\n${key}\r\n$1\r\n*\r\n$1\r\nd\r\n$${payload.length}\r\n`);
    const tail = Buffer.from('\r\n');
    const r = await windowed(count, () => new Promise<void>((resolve) => {
      waiting.push(resolve);
      sock.write(Buffer.concat([head, payload, tail]));
    }));
    sock.destroy();
    return { group: 'cluster log', name: `engine: Redis Streams XADD, appendfsync ${fsync}, pipelined, ${WINDOW} in flight`, value: r.rate, unit: 'uplinks/s', note: `p99 ${r.p99.toFixed(1)} ms; ${load()}` };
  } finally {
    server.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** FLUX's cluster log: paced appends (ack latency, CPU), then its partition consumers draining what was appended. */
async function fluxRows(rate: number, seconds: number): Promise<BenchRow[]> {
  const name = `benchlog${process.pid}`;
  const settings = loadSettings({ FLUX_NATS_URL: NATS, FLUX_NATS_NAME: name, FLUX_DATA_DIR: os.tmpdir(), FLUX_LOG_LEVEL: 'warn' });
  const logger = createLogger({ level: 'warn' });
  const bus = createDeviceBus(logger);
  const m = createClusterLogModule({ settings, cluster: settings.clusterLog!, bus, logger, metrics: createMetrics() });
  await m.start();
  try {
    const payload = Buffer.from('{"values":{"t":21.5}}');
    const lat: number[] = [];
    let refused = 0;
    const total = rate * seconds;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let n = 0;
    await new Promise<void>((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
        for (; n < due; n++) {
          const at = performance.now();
          const d = `dev${n % 1000}`;
          m.journal.accept({ id: `b${n}`, deviceId: d, productId: 'p', productKey: 'meter', type: 'properties', ts: Date.now(), payload, topic: `/meter/${d}/properties/report`, transport: 'mqtt' }, (err) => {
            if (err) refused++;
            else lat.push(performance.now() - at);
            if (lat.length + refused === total) resolve();
          });
        }
        if (n < total) setTimeout(tick, 1);
      };
      tick();
    });
    const cpu = process.cpuUsage(cpu0);
    const { groups } = m.log.stats();
    const rows: BenchRow[] = [
      { group: 'cluster log', name: `FLUX append → stored in JetStream at ${rate / 1000}k/s, p99`, value: pct(lat, 0.99), unit: 'ms', note: `p50 ${pct(lat, 0.5).toFixed(1)} ms; ${total} uplinks in ${groups} messages, ${refused} refused; ${load()}` },
      { group: 'cluster log', name: `FLUX append at ${rate / 1000}k/s: CPU per uplink (appender + NATS client, with the generator)`, value: (cpu.user + cpu.system) / total, unit: 'µs' },
    ];
    let seen = 0;
    bus.on('uplink', {}, async () => {
      seen++;
    });
    const t1 = performance.now();
    await m.replay();
    while (seen < total && performance.now() - t1 < 60_000) await new Promise((r) => setTimeout(r, 20));
    rows.push({ group: 'cluster log', name: 'FLUX partitions (one node, 16) draining a backlog onto the bus', value: seen / ((performance.now() - t1) / 1000), unit: 'uplinks/s', note: `${seen} of ${total}, acknowledged to JetStream once handled; ${load()}` });
    return rows;
  } finally {
    await m.stop();
    const nc = await connect({ servers: NATS.replace('nats://', '') });
    const jsm = await jetstreamManager(nc);
    for (let p = 0; p < 16; p++) await jsm.streams.delete(`${name}_uplinks_${p}`).catch(() => false);
    await jsm.streams.delete(`KV_${name}_leases`).catch(() => false);
    await nc.close();
  }
}

const bench: Bench = async ({ quick }) => {
  const count = quick ? 10_000 : 30_000;
  const rows: BenchRow[] = [];
  rows.push(await jetStreamRow(count, 1));
  rows.push(await jetStreamRow(count * 4, 16));
  for (const fsync of ['everysec', 'always'] as const) {
    try {
      rows.push(await redisRow(count, fsync));
    } catch (err) {
      rows.push({ group: 'cluster log', name: `engine: Redis Streams, appendfsync ${fsync}`, value: NaN, unit: '', note: `FAILED: ${(err as Error).message}` });
    }
  }
  rows.push(...(await fluxRows(10_000, quick ? 2 : 4)));
  return rows;
};

export default bench;
