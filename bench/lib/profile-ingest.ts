/**
 * Ingest probe (not part of `npm run bench`): one FLUX process with the default flow, 247 devices
 * each publishing the Modbus frame of its unit at the given paced rates, reporting µs of FLUX CPU per stored message.
 * With --prof, FLUX runs with --cpu-prof and the top self-time functions are printed.
 *
 *   node bench/lib/profile-ingest.ts [--prof] [--qos 1] [--seconds 6] 10000 20000
 */
import fs from 'node:fs';
import path from 'node:path';
import { MODBUS_DEVICES, MODBUS_FRAME_HEX, metric, provisionModbusUnits, scrape, startFlux, tempDir } from './flux.ts';
import { startLoad, type LoadGroup } from './load.ts';
import { threadCpuLines, threadTicks } from './thread-cpu.ts';
import { ingestStep } from '../pipeline.bench.ts';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const prof = args.includes('--prof');
if (prof) args.splice(args.indexOf('--prof'), 1);
const qos = Number(flag('--qos') ?? 0) as 0 | 1;
const seconds = Number(flag('--seconds') ?? 6);
const rates = args.length ? args.map(Number) : [10_000];

const profDir = tempDir('flux-prof-');
const dataDir = tempDir('flux-probe-');
const devices = await provisionModbusUnits(dataDir, { productKey: 'bench', count: MODBUS_DEVICES, metadata: { properties: [{ id: 'temperature', type: 'float', unit: '°C' }] } });
// PROBE_NODE_OPTIONS: extra V8/Node flags for the FLUX process (e.g. --max-semi-space-size=16)
const nodeOptions = [prof ? `--cpu-prof --cpu-prof-dir=${profDir}` : '', process.env.PROBE_NODE_OPTIONS ?? ''].join(' ').trim();
const flux = await startFlux({ FLUX_LOG_LEVEL: 'warn', ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) }, { dataDir, timeoutMs: 60_000 });
const windows: [number, number][] = [];
let load: LoadGroup | undefined;
let stopped = 0;
try {
  await flux.api('POST', '/api/rules', { name: 'r', enabled: true, trigger_script: 'let temp = msg.values.temperature;\nif (temp > 100.0) { return true; } else { return false; }', action_type: 'flow', action_config: {} });
  load = await startLoad({ host: '127.0.0.1', port: flux.mqtt, devices, payloadHex: MODBUS_FRAME_HEX, qos, processes: 2 });
  await ingestStep(flux, load, 3000, 2); // warm-up
  for (const rate of rates) {
    windows.push([performance.now(), 0]);
    const before = await scrape(flux);
    const ticks = threadTicks(flux.child.pid!);
    const began = performance.now();
    const s = await ingestStep(flux, load, rate, seconds);
    for (const line of threadCpuLines(ticks, threadTicks(flux.child.pid!), (performance.now() - began) / 1000)) console.log(`  thread ${line}`);
    windows.at(-1)![1] = performance.now();
    const perMsg = ((s.cpu / 100) * seconds * 1e6) / Math.max(s.stored, 1);
    const m = await scrape(flux);
    const commits = metric(m, 'flux_uplink_log_groups') - metric(before, 'flux_uplink_log_groups');
    const appends = metric(m, 'flux_uplink_log_appends') - metric(before, 'flux_uplink_log_appends');
    const syncs = metric(m, 'flux_uplink_log_syncs') - metric(before, 'flux_uplink_log_syncs');
    console.log(`  uplink log: ${Math.round(commits / seconds)} group commits a second, ${(appends / Math.max(commits, 1)).toFixed(1)} uplinks each, ${Math.round(syncs / seconds)} fdatasyncs a second`);
    const mb = (k: string) => (metric(m, k) / 2 ** 20).toFixed(0);
    for (const kind of ['minor', 'major', 'incremental']) {
      const of = (name: string) => [...m].filter(([k]) => k.startsWith(name) && k.includes(`kind="${kind}"`)).reduce((a, [, v]) => a + v, 0);
      const secs = of('flux_nodejs_gc_duration_seconds_sum');
      const n = of('flux_nodejs_gc_duration_seconds_count');
      console.log(`  gc ${kind}: ${n} runs, ${(secs * 1000).toFixed(0)} ms in total so far`);
    }
    console.log(`  event loop lag p50 ${(metric(m, 'flux_nodejs_eventloop_lag_p50_seconds') * 1000).toFixed(1)} p99 ${(metric(m, 'flux_nodejs_eventloop_lag_p99_seconds') * 1000).toFixed(1)} max ${(metric(m, 'flux_nodejs_eventloop_lag_max_seconds') * 1000).toFixed(1)} ms`);
    console.log(`  heap used ${mb('flux_nodejs_heap_size_used_bytes')} MB, heap total ${mb('flux_nodejs_heap_size_total_bytes')} MB, external ${mb('flux_nodejs_external_memory_bytes')} MB`);
    if (process.env.PROBE_TRACE) {
      // where the time goes: each stage's end, ms after the broker received the uplink (newest 20 traces of 20 devices)
      const at = new Map<string, number[]>();
      for (const d of devices.slice(0, 20)) {
        const r = await flux.api('GET', `/api/devices/${d.username}/trace?last=20`);
        for (const t of (r.body.items ?? []) as { received_at: number; spans: { stage: string; at: number; took_ms?: number }[] }[])
          for (const sp of t.spans) {
            (at.get(sp.stage) ?? at.set(sp.stage, []).get(sp.stage)!).push(sp.at - t.received_at);
            if (sp.took_ms !== undefined) (at.get(`${sp.stage} took`) ?? at.set(`${sp.stage} took`, []).get(`${sp.stage} took`)!).push(Math.round(sp.took_ms));
          }
      }
      const q = (a: number[], f: number) => a.sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * f))]!;
      for (const [stage, a] of at) console.log(`  trace ${stage}: p50 ${q(a, 0.5)} p90 ${q(a, 0.9)} ms (${a.length})`);
    }
    console.log(`qos${qos} ${rate}/s: stored ${Math.round(s.stored / seconds)}/s loss ${s.loss} p50 ${s.p50.toFixed(1)} p99 ${s.p99.toFixed(1)} ms (after 2 s: ${s.settledP99.toFixed(1)}) cpu ${s.cpu.toFixed(0)}% = ${perMsg.toFixed(1)} µs/msg rss ${s.rss.toFixed(0)} MB gen ${s.generatorCpu.toFixed(0)}%`);
  }
} finally {
  await load?.close();
  // PROBE_OUTPUT=file: what FLUX printed (e.g. with PROBE_NODE_OPTIONS=--trace-gc)
  if (process.env.PROBE_OUTPUT) fs.writeFileSync(process.env.PROBE_OUTPUT, flux.output());
  await flux.stop();
  stopped = performance.now();
}

if (prof) {
  // the main thread's profile is the largest (FLUX re-executes itself at start, which writes a small one too)
  const file = fs
    .readdirSync(profDir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(profDir, f))
    .sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
  if (file) {
    const p = JSON.parse(fs.readFileSync(file, 'utf8')) as { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]; samples: number[]; timeDeltas: number[]; endTime: number };
    // only the samples of the measured steps (the profile ends when the process exits, about when stop() returned)
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const ranges = windows.map(([a, b]) => [p.endTime - (stopped - a) * 1000, p.endTime - (stopped - b) * 1000] as const);
    const self = new Map<string, number>();
    let total = 0;
    let t = p.endTime;
    for (let i = p.samples.length - 1; i >= 0; i--) {
      if (ranges.some(([a, b]) => t >= a && t <= b)) {
        const n = byId.get(p.samples[i]!)!;
        const key = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/^.*node_modules\//, '~/').replace(/^file:\/\/\/work\/main\//, '')}:${n.callFrame.lineNumber + 1}`;
        self.set(key, (self.get(key) ?? 0) + 1);
        total++;
      }
      t -= p.timeDeltas[i]!;
    }
    const kept: number[] = [];
    const keptDeltas: number[] = [];
    t = p.endTime;
    for (let i = p.samples.length - 1; i >= 0; i--) {
      if (ranges.some(([a, b]) => t >= a && t <= b)) {
        kept.push(p.samples[i]!);
        keptDeltas.push(p.timeDeltas[i]!);
      }
      t -= p.timeDeltas[i]!;
    }
    fs.writeFileSync(file.replace(/\.cpuprofile$/, '.window.cpuprofile'), JSON.stringify({ ...p, samples: kept.reverse(), timeDeltas: keptDeltas.reverse() }));
    const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.TOP ?? 45));
    for (const [k, v] of top) console.log(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`);
    console.log(`profile: ${file}`);
  }
}
