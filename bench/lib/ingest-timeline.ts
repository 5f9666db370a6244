/**
 * Timeline probe (not part of `npm run bench`): the default flow as in bench/lib/profile-ingest.ts,
 * one paced step, and every 250 ms the uplinks stored, the p99 receive → stored of that window alone,
 * the main thread's and V8's helper threads' CPU, the heap and the major GCs so far. It shows whether
 * a step's p99 comes from a few windows (a GC, the JIT's tier-up) or from every window (the main
 * thread saturated).
 *
 *   node bench/lib/ingest-timeline.ts [--qos 1] [--seconds 10] [--warm RATE:SECONDS] 30000
 */
import { MODBUS_DEVICES, MODBUS_FRAME_HEX, histogramQuantile, metric, provisionModbusUnits, scrape, startFlux, tempDir } from './flux.ts';
import { startLoad } from './load.ts';
import { threadTicks, type ThreadTicks } from './thread-cpu.ts';
import { ingestStep } from '../pipeline.bench.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i < 0 ? fallback : args.splice(i, 2)[1]!;
};
const qos = Number(flag('--qos', '0')) as 0 | 1;
const seconds = Number(flag('--seconds', '10'));
const [warmRate, warmSeconds] = flag('--warm', '3000:2').split(':').map(Number) as [number, number];
const rate = Number(args[0] ?? 30_000);
const WINDOW_MS = 250;

const dataDir = tempDir('flux-timeline-');
const devices = await provisionModbusUnits(dataDir, { productKey: 'bench', count: MODBUS_DEVICES, metadata: { properties: [{ id: 'temperature', type: 'float', unit: '°C' }] } });
const flux = await startFlux({ FLUX_LOG_LEVEL: 'warn', ...(process.env.PROBE_NODE_OPTIONS ? { NODE_OPTIONS: process.env.PROBE_NODE_OPTIONS } : {}) }, { dataDir, timeoutMs: 60_000 });
const load = await startLoad({ host: '127.0.0.1', port: flux.mqtt, devices, payloadHex: MODBUS_FRAME_HEX, qos, processes: 2 });
try {
  await flux.api('POST', '/api/rules', { name: 'r', enabled: true, trigger_script: 'let temp = msg.values.temperature;\nif (temp > 100.0) { return true; } else { return false; }', action_type: 'flow', action_config: {} });
  await ingestStep(flux, load, warmRate, warmSeconds);
  const cpu = (before: ThreadTicks, after: ThreadTicks, name: string, secs: number) => {
    const a = before.get(name) ?? { user: 0, sys: 0 };
    const b = after.get(name) ?? a;
    return (b.user + b.sys - a.user - a.sys) / secs; // ticks are 1/100 s: per second that is % of a core
  };
  const running = load.run(rate, seconds);
  const start = performance.now();
  let m0 = await scrape(flux);
  let t0 = threadTicks(flux.child.pid!);
  let at0 = performance.now();
  console.log(`qos${qos} ${rate}/s, windows of ${WINDOW_MS} ms: end (s), stored, p99 of the window (ms, bucket-interpolated), main thread %, V8 helpers %, heap used MB, major GCs so far`);
  while (performance.now() - start < seconds * 1000 + 500) {
    await new Promise((r) => setTimeout(r, WINDOW_MS));
    const m1 = await scrape(flux);
    const t1 = threadTicks(flux.child.pid!);
    const at1 = performance.now();
    const secs = (at1 - at0) / 1000;
    const stored = metric(m1, 'flux_storage_points_written_total') - metric(m0, 'flux_storage_points_written_total');
    const p99 = stored > 0 ? histogramQuantile(m0, m1, 'flux_pipeline_latency_seconds', 0.99) * 1000 : NaN;
    const majors = [...m1].filter(([k]) => k.startsWith('flux_nodejs_gc_duration_seconds_count') && k.includes('kind="major"')).reduce((s, [, v]) => s + v, 0);
    console.log(
      [((at1 - start) / 1000).toFixed(2), String(stored).padStart(6), p99.toFixed(0).padStart(4), cpu(t0, t1, 'MainThread', secs).toFixed(0).padStart(3), cpu(t0, t1, 'V8Worker', secs).toFixed(0).padStart(3), (metric(m1, 'flux_nodejs_heap_size_used_bytes') / 2 ** 20).toFixed(0).padStart(4), majors].join('  '),
    );
    [m0, t0, at0] = [m1, t1, at1];
  }
  await running;
} finally {
  await load.close();
  await flux.stop();
}
