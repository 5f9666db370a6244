/**
 * Plugin decode throughput and latency with the Rust Modbus example:
 * in-process single thread (the whole ABI round trip + JSON.parse on the main thread) versus the
 * host (batched postMessage to worker threads), the p99 added latency at a paced 50k frames/s, and
 * the live decode latency at 20k frames/s without and with a shadow version comparing every frame.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSettings } from '../settings.ts';
import { createLogger } from '../runtime/log/index.ts';
import { createRegistry } from '../runtime/registry/index.ts';
import { createDeviceBus } from '../runtime/bus/index.ts';
import { createMetrics } from '../runtime/metrics/index.ts';
import { createTracer } from '../runtime/trace/index.ts';
import type { FluxContext } from '../runtime/app/index.ts';
import { createPluginHost } from '../runtime/plugins/index.ts';
import { createShadows } from '../runtime/plugin-compare/index.ts';
import type { Bench, BenchRow } from './types.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WASM = path.join(ROOT, 'plugins', 'dist', 'modbus.wasm');
const FRAME = Buffer.from('01030201C50000', 'hex');

function inProcessRate(ms: number): number {
  const inst = new WebAssembly.Instance(new WebAssembly.Module(fs.readFileSync(WASM)), { env: { flux_log: () => {}, abort: () => {} } });
  const e = inst.exports as Record<string, any>;
  const mem = e.memory as WebAssembly.Memory;
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let n = 0;
  let sink = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) {
      const p = e.alloc(FRAME.length) >>> 0;
      new Uint8Array(mem.buffer, p, FRAME.length).set(FRAME);
      const r = BigInt.asUintN(64, e.decode(p, FRAME.length));
      const op = Number(r >> 32n);
      const ol = Number(r & 0xffffffffn);
      const v = JSON.parse(utf8.decode(new Uint8Array(mem.buffer, op, ol)));
      e.dealloc(p, FRAME.length);
      e.dealloc(op, ol);
      sink += v.values.temperature;
    }
    n += 1000;
  }
  if (sink === 0) throw new Error('decoder produced nothing');
  return n / (ms / 1000);
}

async function startHost(workers: number) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-bench-plugins-'));
  const settings = loadSettings({ FLUX_DATA_DIR: dataDir, FLUX_PLUGINS_DIR: path.join(dataDir, 'none'), FLUX_LOG_LEVEL: 'error' });
  const log = createLogger({ level: 'error' });
  const registry = createRegistry({ db: settings.db, log });
  await registry.start();
  const ctx = { settings, log, registry, bus: createDeviceBus(log), metrics: createMetrics(), trace: createTracer(), adminToken: 'x'.repeat(32) } as unknown as FluxContext;
  const host = createPluginHost(ctx, { workers, watch: false });
  await host.start();
  await host.install('modbus', fs.readFileSync(WASM), 'api');
  return {
    host,
    async stop() {
      await host.stop();
      await registry.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** As fast as possible with a bounded window of frames in flight (what a busy ingress does). */
async function hostRate(host: Awaited<ReturnType<typeof startHost>>['host'], ms: number, window = 8192): Promise<number> {
  let done = 0;
  let inFlight = 0;
  const end = performance.now() + ms;
  await new Promise<void>((resolve, reject) => {
    const fill = () => {
      if (performance.now() >= end) {
        if (inFlight === 0) resolve();
        return;
      }
      while (inFlight < window) {
        inFlight++;
        host.decode('modbus', FRAME).then(
          () => {
            done++;
            if (--inFlight < window / 2) fill();
          },
          reject,
        );
      }
    };
    fill();
  });
  return done / (ms / 1000);
}

/** Paced load: frames due every turn at `rate`/s; latency = answer time − due time. Nothing retained per frame but one number. */
async function pacedP99(host: Awaited<ReturnType<typeof startHost>>['host'], rate: number, ms: number, live = false): Promise<{ p50: number; p99: number; sent: number }> {
  const total = Math.floor((ms / 1000) * rate);
  const lat = new Float64Array(total);
  const t0 = performance.now();
  let sent = 0;
  let answered = 0;
  await new Promise<void>((resolve, reject) => {
    const tick = () => {
      const due = Math.min(Math.floor(((performance.now() - t0) / 1000) * rate), total);
      while (sent < due) {
        const k = sent++;
        // `live`: the pipeline's call (decodeFrame), which a shadow version watches
        (live ? host.decodeFrame('modbus', FRAME, Date.now(), 'bench_1') : host.decode('modbus', FRAME)).then(() => {
          lat[k] = performance.now() - (t0 + (k / rate) * 1000);
          if (++answered === total) resolve();
        }, reject);
      }
      if (sent < total) setImmediate(tick);
    };
    tick();
  });
  lat.sort();
  return { p50: lat[Math.floor(total * 0.5)]!, p99: lat[Math.floor(total * 0.99)]!, sent };
}

/** The live decode's added latency at 20k frames/s without and with a shadow version comparing every frame (runtime/plugin-compare). */
async function shadowRows(host: Awaited<ReturnType<typeof startHost>>['host'], ms: number): Promise<BenchRow[]> {
  const without = await pacedP99(host, 20_000, ms, true);
  // the same module with another deadline is a version of its own: the shadow
  const candidate = (await host.install('modbus', fs.readFileSync(WASM), 'api', { deadline_ms: 60 }, { activate: false })).version.version;
  const shadows = createShadows({ host, logger: createLogger({ level: 'error' }) });
  await shadows.start('modbus', { version: candidate, sample: 0.1 });
  const sampled = await pacedP99(host, 20_000, ms, true);
  await new Promise((r) => setTimeout(r, 200));
  const s10 = shadows.stop('modbus');
  await shadows.start('modbus', { version: candidate, sample: 1 });
  const withShadow = await pacedP99(host, 20_000, ms, true);
  await new Promise((r) => setTimeout(r, 200));
  const s = shadows.stop('modbus');
  return [
    {
      group: 'plugins', name: 'live decode latency p99 at 20k frames/s, shadow version on 10% of frames', value: sampled.p99, unit: 'ms',
      note: `p50 ${sampled.p50.toFixed(2)} ms; compared ${s10.same + s10.different + s10.failed}, dropped ${s10.dropped}`,
    },
    { group: 'plugins', name: 'live decode latency p99 at 20k frames/s, no shadow', value: without.p99, unit: 'ms', note: `p50 ${without.p50.toFixed(2)} ms` },
    {
      group: 'plugins', name: 'live decode latency p99 at 20k frames/s, shadow version on every frame', value: withShadow.p99, unit: 'ms', target: '< 5 ms', met: withShadow.p99 < 5,
      note: `p50 ${withShadow.p50.toFixed(2)} ms; compared ${s.same + s.different + s.failed}, dropped ${s.dropped} (queue full)`,
    },
  ];
}

const bench: Bench = async ({ quick }) => {
  const ms = quick ? 1000 : 3000;
  const rows: BenchRow[] = [];
  inProcessRate(300); // warm-up
  const base = inProcessRate(ms);
  rows.push({ group: 'plugins', name: 'decode, Modbus (Rust), in-process single thread', value: base, unit: 'decodes/s', note: 'alloc + copy + decode + UTF-8 + JSON.parse on the main thread' });
  const workers = Math.max(1, Math.min(os.availableParallelism() - 1, 4));
  const h = await startHost(workers);
  try {
    await hostRate(h.host, 300);
    const rate = await hostRate(h.host, ms);
    const ratio = rate / base;
    rows.push({ group: 'plugins', name: `decode, Modbus (Rust), host: batched, ${workers} worker thread(s)`, value: rate, unit: 'decodes/s', target: '>= 60% of in-process', met: ratio >= 0.6, note: `${Math.round(ratio * 100)}% of in-process` });
    const paced = await pacedP99(h.host, 50_000, ms);
    rows.push({ group: 'plugins', name: 'decode added latency p99 at 50k frames/s (host)', value: paced.p99, unit: 'ms', target: '< 5 ms', met: paced.p99 < 5, note: `p50 ${paced.p50.toFixed(2)} ms, ${paced.sent} frames` });
    rows.push(...(await shadowRows(h.host, ms)));
  } finally {
    await h.stop();
  }
  return rows;
};

export default bench;
