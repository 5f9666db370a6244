/**
 * Broker benchmarks: QoS 0 fan-in (50 unthrottled device publishers → 1 platform subscriber) with
 * FLUX's packet guard and without it (plain aedes reading), and idle-connection memory.
 * The broker runs in a child process (`node bench/broker.bench.ts --serve`), the load here; both
 * share the machine's cores. `BENCH_AEDES_IMPORT=<hook.mjs>` runs the child with another aedes
 * (how aedes 2.0.0-beta.1 was evaluated; docs/broker.md).
 */
import net from 'node:net';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { Bench, BenchRow } from './types.ts';

const PUBLISHERS = 50;
const TOKEN = 'bench-admin-token-0123456789abcdef';
const secretOf = (i: number) => `bench-secret-${i}-0123456789`;

async function serve(): Promise<void> {
  const { startAccess } = await import('../test/broker/access.ts');
  const devices: Record<string, string> = {};
  for (let i = 0; i < PUBLISHERS; i++) devices[`pub-${i}`] = secretOf(i);
  const batchPackets = process.env.BENCH_BATCH ? Number(process.env.BENCH_BATCH) : undefined;
  const concurrency = process.env.BENCH_CONCURRENCY ? Number(process.env.BENCH_CONCURRENCY) : undefined;
  const a = await startAccess({ devices, broker: { batchPackets, concurrency, maxConnections: 19_000 }, env: { FLUX_ADMIN_TOKEN: TOKEN } });
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'rss' || m.cmd === 'cpu') {
      if (m.cmd === 'rss') (globalThis as { gc?: () => void }).gc?.();
      const cpu = process.cpuUsage();
      process.send!({ rss: process.memoryUsage().rss, heap: process.memoryUsage().heapUsed, connections: a.broker.connections(), cpuMs: (cpu.user + cpu.system) / 1000 });
    }
    if (m.cmd === 'stop') {
      if (process.env.BENCH_LOGS) {
        const counts = new Map<string, number>();
        for (const l of a.logs) counts.set(String(l.msg), (counts.get(String(l.msg)) ?? 0) + 1);
        console.error('broker child logs:', [...counts].sort((x, y) => y[1] - x[1]).slice(0, 5));
      }
      a.stop().then(() => process.exit(0));
    }
  });
  process.send!({ port: a.broker.port() });
}

interface Server {
  child: ChildProcess;
  port: number;
  ask(cmd: string): Promise<any>;
  stop(): Promise<void>;
}

async function startServer(env: Record<string, string>): Promise<Server> {
  const execArgv = ['--expose-gc', ...(process.env.BENCH_AEDES_IMPORT ? [`--import=${process.env.BENCH_AEDES_IMPORT}`] : [])];
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], { execArgv, env: { ...process.env, FLUX_LOG_LEVEL: 'silent', ...env }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`broker child exited ${code}`)));
  });
  const ask = (cmd: string) =>
    new Promise<any>((resolve) => {
      child.once('message', resolve);
      child.send({ cmd });
    });
  return {
    child,
    port,
    ask,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.send({ cmd: 'stop' });
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      }),
  };
}

function rawConnect(port: number, username: string, password: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `${username}/${Math.random().toString(36).slice(2)}`, clean: true, keepalive: 0, username, password: Buffer.from(password) })));
    s.once('data', (d) => (d[0] === 0x20 && d[3] === 0 ? resolve(s) : reject(new Error(`CONNACK ${d[3]}`))));
    s.once('error', reject);
  });
}

/** 50 raw publishers writing QoS 0 reports as fast as their sockets take them; the subscriber counts and timestamps. */
async function fanIn(label: string, env: Record<string, string>, seconds: number, rate = 0): Promise<BenchRow[]> {
  const server = await startServer(env);
  const sub = mqtt.connect(`mqtt://127.0.0.1:${server.port}`, { username: 'bench-dashboard', password: TOKEN, reconnectPeriod: 0 });
  await new Promise((resolve, reject) => {
    sub.once('connect', resolve);
    sub.once('error', reject);
  });
  await sub.subscribeAsync('/thermo/+/properties/report', { qos: 0 });
  let received = 0;
  let measuring = false;
  const latencies: number[] = [];
  sub.on('message', (_t, payload) => {
    if (!measuring) return;
    received++;
    if ((received & 7) === 0) latencies.push(performance.now() - payload.readDoubleLE(0));
  });
  const pubs = await Promise.all(Array.from({ length: PUBLISHERS }, (_, i) => rawConnect(server.port, `pub-${i}`, secretOf(i))));
  let running = true;
  const templates = pubs.map((_, i) => mqttPacket.generate({ cmd: 'publish', topic: `/thermo/pub-${i}/properties/report`, payload: Buffer.alloc(64), qos: 0, retain: false, dup: false }));
  const BATCH = 50;
  const loops = pubs.map((s, i) => {
    const t = templates[i]!;
    const off = t.length - 64;
    return new Promise<void>((resolve) => {
      const perTick = Math.max(1, Math.round(rate / PUBLISHERS / 100));
      const pump = () => {
        if (rate > 0) {
          // paced: `rate` msg/s in total, a burst every 10 ms
          if (!running) return resolve();
          const buf = Buffer.allocUnsafe(t.length * perTick);
          const now = performance.now();
          for (let k = 0; k < perTick; k++) {
            t.copy(buf, k * t.length);
            buf.writeDoubleLE(now, k * t.length + off);
          }
          s.write(buf);
          return void setTimeout(pump, 10);
        }
        while (running) {
          const buf = Buffer.allocUnsafe(t.length * BATCH);
          const now = performance.now();
          for (let k = 0; k < BATCH; k++) {
            t.copy(buf, k * t.length);
            buf.writeDoubleLE(now, k * t.length + off);
          }
          if (!s.write(buf)) return void s.once('drain', pump);
        }
        resolve();
      };
      s.on('error', () => resolve());
      pump();
    });
  });
  await new Promise((r) => setTimeout(r, 1000)); // warm-up
  const { cpuMs: cpu0 } = await server.ask('cpu');
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const elapsed = (performance.now() - t0) / 1000;
  measuring = false;
  running = false;
  const { rss, heap, cpuMs } = await server.ask('rss');
  const cpuPct = (cpuMs - cpu0) / 10 / elapsed;
  for (const s of pubs) s.destroy();
  await Promise.race([Promise.all(loops), new Promise((r) => setTimeout(r, 1000))]);
  sub.end(true);
  await server.stop();
  latencies.sort((x, y) => x - y);
  const p99 = latencies.length ? latencies[Math.floor(latencies.length * 0.99)]! : NaN;
  return [
    { group: 'broker', name: `QoS0 fan-in 50→1, ${label}: delivered`, value: received / elapsed, unit: 'msg/s', target: '>= 40k/s', met: received / elapsed >= 40_000, note: `broker CPU ${cpuPct.toFixed(0)}% of a core, ${((cpuPct * 10_000) / Math.max(received / elapsed, 1)).toFixed(1)} µs/msg` },
    { group: 'broker', name: `QoS0 fan-in 50→1, ${label}: p99 latency`, value: p99, unit: 'ms', target: '<= 1000 ms', met: p99 <= 1000 },
    { group: 'broker', name: `QoS0 fan-in 50→1, ${label}: broker RSS`, value: rss / 2 ** 20, unit: 'MB', note: `heap after GC ${Math.round(heap / 2 ** 20)} MB` },
  ];
}

async function idleConnections(n: number): Promise<BenchRow[]> {
  const server = await startServer({});
  const before = (await server.ask('rss')).rss as number;
  const sockets: net.Socket[] = [];
  for (let i = 0; i < n; i += 100) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, k) => rawConnect(server.port, `pub-${(i + k) % PUBLISHERS}`, secretOf((i + k) % PUBLISHERS))))));
  }
  await new Promise((r) => setTimeout(r, 500));
  const after = await server.ask('rss');
  for (const s of sockets) s.destroy();
  await server.stop();
  const perConn = (after.rss - before) / n / 1024;
  return [{ group: 'broker', name: `idle MQTT connections (${n}): RSS per connection`, value: perConn, unit: 'KB', target: '<= 32 KB', met: perConn <= 32, note: `${after.connections} open` }];
}

const bench: Bench = async ({ quick }) => {
  const seconds = quick ? 3 : 10;
  const aedesLabel = process.env.BENCH_AEDES_IMPORT ? 'aedes (hook)' : 'aedes';
  const only = process.env.BENCH_BROKER?.split(',');
  if (only) {
    const rows: BenchRow[] = [];
    if (only.includes('fanin')) rows.push(...(await fanIn(`FLUX guard, ${aedesLabel}`, {}, seconds)));
    if (only.includes('paced')) rows.push(...(await fanIn(`paced 40k msg/s, FLUX guard, ${aedesLabel}`, {}, seconds, 40_000)));
    if (only.includes('plain')) rows.push(...(await fanIn(`plain aedes reading (no guard, concurrency 100), ${aedesLabel}`, { BENCH_BATCH: '1000000', BENCH_CONCURRENCY: '100' }, seconds)));
    if (only.includes('idle')) rows.push(...(await idleConnections(quick ? 1000 : 5000)));
    return rows;
  }
  return [
    ...(await fanIn(`FLUX guard, ${aedesLabel}`, {}, seconds)),
    ...(await fanIn(`paced 40k msg/s, FLUX guard, ${aedesLabel}`, {}, seconds, 40_000)),
    ...(await fanIn(`plain aedes reading (no guard, concurrency 100), ${aedesLabel}`, { BENCH_BATCH: '1000000', BENCH_CONCURRENCY: '100' }, seconds)),
    ...(await idleConnections(quick ? 1000 : 5000)),
  ];
};
export default bench;

if (process.argv.includes('--serve')) await serve();
