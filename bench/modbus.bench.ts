/**
 * Modbus master benchmarks (docs/modbus.md): polling jitter of 100 units on one endpoint, CPU of
 * 1,000 units on 10 endpoints, and what one dead unit (1 s timeout) adds to the others' intervals.
 * The slaves run in a child process (bench/lib/modbus-slaves.ts); the master runs here with a real
 * registry (SQLite), durable uplink log (appended to as in production), device bus and presence, and
 * the figures are taken where the values arrive: a listener on the device bus (the Node-RED flow is
 * not part of these rows).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Bench, BenchRow } from './types.ts';
import { loadSettings } from '../settings.ts';
import { testContext } from '../test/helpers/context.ts';
import { tempDir } from '../test/helpers/flux-process.ts';
import { createPresence } from '../runtime/ingress/index.ts';
import { createEndpoint, createModbusMaster, readRequest } from '../runtime/modbus/index.ts';
import ModbusSerial from 'modbus-serial';

const dir = path.dirname(fileURLToPath(import.meta.url));
// CommonJS: the default import is module.exports, which is the client class itself (its types say otherwise)
const ModbusClient = ModbusSerial as unknown as typeof ModbusSerial.default;

interface SlaveSpec {
  mode: 'tcp' | 'rtu-over-tcp';
  units: number;
  muted?: number[];
  /** the slave answers each request this much later (a device's or network's latency) */
  delayMs?: number;
}

async function slaves(specs: SlaveSpec[]): Promise<{ ports: number[]; stop(): void }> {
  const child = spawn(process.execPath, [path.join(dir, 'lib', 'modbus-slaves.ts'), JSON.stringify(specs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the slave process exited with ${code}`)));
  });
  return { ports: JSON.parse(line) as number[], stop: () => child.stdin!.end() };
}

const percentile = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

interface RunResult {
  /** per device: gaps between the arrivals of its values (ms) */
  gaps: Map<string, number[]>;
  /** per device: gaps between the starts of its polls (`ts`, when its timer fired) */
  startGaps: number[];
  cpuPercent: number;
  polls: number;
}

/** Polls `specs` (endpoint i gets devices unit 1…units) at 1 s for `seconds` after a warm-up. */
async function run(specs: SlaveSpec[], seconds: number, timeoutMs = 1000): Promise<RunResult> {
  const sl = await slaves(specs);
  const { ctx } = await testContext(loadSettings({ FLUX_DATA_DIR: tempDir('flux-bench-modbus-'), FLUX_LOG_LEVEL: 'warn' }));
  const presence = createPresence(ctx);
  const master = createModbusMaster({ registry: ctx.registry, journal: ctx.journal, presence, metrics: ctx.metrics, log: ctx.log, syncMs: 3_600_000 });
  try {
    const product = await ctx.registry.products.create({
      key: 'meter', name: 'meter',
      transport: { modbus: { interval_ms: 1000, timeout_ms: timeoutMs, registers: [
        { property: 'a', function: 3, address: 0, type: 'int16', scale: 0.1 },
        { property: 'b', function: 3, address: 1, type: 'uint32' },
        { property: 'c', function: 3, address: 3, type: 'float32' },
      ] } },
    });
    for (const [i, s] of specs.entries()) {
      for (let u = 1; u <= s.units; u++) {
        await ctx.registry.devices.create({ id: `m${i}-${u}`, product_id: product.id, transport: { modbus: { host: '127.0.0.1', port: sl.ports[i], unit: u, mode: s.mode } } });
      }
    }
    const last = new Map<string, number>();
    const lastTs = new Map<string, number>();
    const gaps = new Map<string, number[]>();
    const startGaps: number[] = [];
    let recording = false;
    let polls = 0;
    ctx.bus.on('uplink', last, (up) => {
      const now = performance.now();
      const prev = last.get(up.deviceId);
      const prevTs = lastTs.get(up.deviceId);
      last.set(up.deviceId, now);
      lastTs.set(up.deviceId, up.ts);
      if (!recording || prev === undefined) return;
      startGaps.push(up.ts - prevTs!);
      polls++;
      let g = gaps.get(up.deviceId);
      if (!g) gaps.set(up.deviceId, (g = []));
      g.push(now - prev);
    });
    await master.start();
    await new Promise((r) => setTimeout(r, 2500)); // warm-up: connections, first polls
    recording = true;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    recording = false;
    return { gaps, startGaps, cpuPercent: ((cpu.user + cpu.system) / 1000 / wall) * 100, polls };
  } finally {
    await master.stop();
    await presence.flush();
    await ctx.registry.stop();
    sl.stop();
  }
}

/**
 * Reads per second over one Modbus TCP connection to a slave that answers each request 5 ms later:
 * FLUX's endpoint (16 in flight) against modbus-serial's client, one request at a time and 16 at
 * once (docs/modbus.md "The library choice": pipelining matters; both can do it on Modbus TCP).
 */
async function throughput(seconds: number): Promise<{ flux: number; serialOne: number; serialMany: number }> {
  const sl = await slaves([{ mode: 'tcp', units: 1, delayMs: 5 }]);
  const port = sl.ports[0]!;
  const loop = async (concurrency: number, read: () => Promise<unknown>) => {
    let n = 0;
    const end = performance.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          await read();
          n++;
        }
      }),
    );
    return n / seconds;
  };
  try {
    const ep = createEndpoint({ host: '127.0.0.1', port, mode: 'tcp', maxInFlight: 16 });
    const flux = await loop(16, () => ep.request(1, readRequest(3, 0, 3), 1000));
    ep.close();
    const client = new ModbusClient();
    await client.connectTCP('127.0.0.1', { port });
    client.setID(1);
    client.setTimeout(1000);
    const serialOne = await loop(1, () => client.readHoldingRegisters(0, 3));
    const serialMany = await loop(16, () => client.readHoldingRegisters(0, 3));
    await new Promise<void>((resolve) => client.close(() => resolve()));
    return { flux, serialOne, serialMany };
  } finally {
    sl.stop();
  }
}

const bench: Bench = async ({ quick }) => {
  const seconds = quick ? 6 : 20;
  const rows: BenchRow[] = [];
  const group = 'modbus';

  for (const mode of ['tcp', 'rtu-over-tcp'] as const) {
    const r = await run([{ mode, units: 100 }], seconds);
    const jitter = [...r.gaps.values()].flat().map((g) => Math.abs(g - 1000));
    const p99 = percentile(jitter, 99);
    rows.push({
      group, name: `100 units on one ${mode === 'tcp' ? 'Modbus TCP' : 'RTU-over-TCP'} endpoint at 1 s: interval jitter p99`, value: p99, unit: 'ms',
      target: mode === 'tcp' ? '< 50 ms' : undefined, met: mode === 'tcp' ? p99 < 50 : undefined,
      note: `arrival of the values; max ${Math.round(Math.max(...jitter))} ms; poll starts: p99 ${Math.round(percentile(r.startGaps.map((g) => Math.abs(g - 1000)), 99))} ms; ${r.polls} polls, master CPU ${r.cpuPercent.toFixed(1)}% of a core`,
    });
  }

  {
    const r = await run(Array.from({ length: 10 }, () => ({ mode: 'tcp' as const, units: 100 })), seconds);
    const jitter = [...r.gaps.values()].flat().map((g) => Math.abs(g - 1000));
    rows.push({
      group, name: '1,000 units across 10 Modbus TCP endpoints at 1 s: master CPU', value: r.cpuPercent, unit: '% of a core', target: '< 10 %', met: r.cpuPercent < 10,
      note: `${Math.round(r.polls / seconds)} polls/s (3 registers each, 1 request); jitter p99 ${Math.round(percentile(jitter, 99))} ms (arrival), ${Math.round(percentile(r.startGaps.map((g) => Math.abs(g - 1000)), 99))} ms (poll starts)`,
    });
  }

  {
    // 10 units behind one Modbus TCP gateway; unit 10 never answers (1 s timeout)
    const base = await run([{ mode: 'tcp', units: 9 }], seconds);
    const dead = await run([{ mode: 'tcp', units: 10, muted: [10] }], seconds);
    const others = (r: RunResult) => [...r.gaps.entries()].filter(([id]) => id !== 'm0-10').flatMap(([, g]) => g);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const added = mean(others(dead)) - mean(others(base));
    rows.push({
      group, name: "one dead unit (1 s timeout) behind a Modbus TCP gateway: added to the others' mean interval", value: added, unit: 'ms', target: '0 ms (± noise)', met: Math.abs(added) < 5,
      note: `others' p99 interval ${Math.round(percentile(others(dead), 99))} ms with the dead unit, ${Math.round(percentile(others(base), 99))} ms without`,
    });
  }
  {
    const t = await throughput(quick ? 2 : 5);
    rows.push({
      group, name: 'reads/s over one Modbus TCP connection, slave answering in 5 ms: FLUX endpoint (pipelined, 16 in flight)', value: t.flux, unit: 'reads/s',
      note: `modbus-serial 8.0.25 client: ${Math.round(t.serialOne)} reads/s one request at a time, ${Math.round(t.serialMany)} with 16 at once (one unit id and timeout per client)`,
    });
  }
  return rows;
};

export default bench;
