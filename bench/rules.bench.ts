/**
 * Rule benchmarks: the seed's high-temperature rule (verbatim Rhai, test/rules/seed-scripts.ts) run in its QuickJS sandbox
 * on this thread (compiled once, re-run with callFunction); the same rule through the rule engine
 * as it runs in FLUX (registry rule, filters, counters, the script worker pool; a flux process
 * without Node-RED); and the platform's MQTT → decode → rules → store throughput of a real FLUX
 * process with and without one enabled `while (true) {}` rule.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Bench, BenchRow } from './types.ts';
import { createScriptHost } from '../runtime/scripts/index.ts';
import { createFlux } from '../runtime/app/index.ts';
import { loadSettings } from '../settings.ts';
import { createLogger } from '../runtime/log/index.ts';
import { SEED_HIGH_TEMPERATURE_RULE } from '../test/rules/seed-scripts.ts';
import { platformThroughput } from './lib/looping-rule.ts';

const TARGET = 150_000;

function messages(n: number) {
  // 1 in 10 above 45 °C: the rule prints and returns true for those.
  return Array.from({ length: n }, (_, i) => ({ device_id: `sensor_${i % 100}`, values: { temperature: i % 10 === 0 ? 46.0 : 44.0, humidity: 40 + (i % 7) }, ts: 1_700_000_000_000 + i }));
}

/**
 * Like `measure` for an engine that answers later: `window` messages are in flight at once (what a
 * flow under load has queued), the next window goes once they answered.
 */
async function measureAsync(ms: number, window: number, fn: (m: ReturnType<typeof messages>[number]) => Promise<unknown>): Promise<number> {
  const msgs = messages(window);
  const round = () => Promise.all(msgs.map(fn));
  for (let i = 0; i < 20; i++) await round();
  let n = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < ms) {
    await round();
    n += window;
    now = performance.now();
  }
  return (n / (now - t0)) * 1000;
}

/** Runs `fn` over the messages for `ms`, after a warm-up; answers runs per second. */
function measure(ms: number, fn: (m: ReturnType<typeof messages>[number]) => void): number {
  const msgs = messages(1000);
  for (let i = 0; i < 20_000; i++) fn(msgs[i % 1000]!);
  let n = 0;
  const t0 = performance.now();
  let now = t0;
  while (now - t0 < ms) {
    for (let i = 0; i < 1000; i++) fn(msgs[i]!);
    n += 1000;
    now = performance.now();
  }
  return (n / (now - t0)) * 1000;
}

/** Messages per call in the batched row. */
const BATCH = 100;

const bench: Bench = async ({ quick }) => {
  const ms = quick ? 1000 : 4000;
  const rows: BenchRow[] = [];

  const host = await createScriptHost();
  const script = host.compile(SEED_HIGH_TEMPERATURE_RULE);
  const sandbox = measure(ms, (m) => script.run(m));
  rows.push({ group: 'rules', name: 'high-temperature rule, QuickJS sandbox run (compiled once, callFunction)', value: sandbox, unit: 'runs/s', target: `>= ${TARGET / 1000}k/s`, met: sandbox >= TARGET, note: 'one core, 10% of runs print and trigger' });
  // what the script worker does with the runs of one round trip (runtime/scripts/sandbox.ts runMany)
  const batch = messages(BATCH);
  const text = JSON.stringify(batch);
  let step = 0;
  // one call per BATCH of measure's steps, so that its count is runs
  const batched = measure(ms, () => {
    if (++step % BATCH === 0) script.runMany(text, BATCH);
  });
  script.dispose();
  rows.push({ group: 'rules', name: `high-temperature rule, QuickJS sandbox, ${BATCH} messages per call (runMany)`, value: batched, unit: 'runs/s', target: `>= ${TARGET / 1000}k/s`, met: batched >= TARGET, note: 'one core, the JSON text made once; what the script worker runs when one round trip carries many messages' });

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-bench-rules-'));
  const settings = loadSettings({ FLUX_DATA_DIR: dataDir, FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: 'bench-admin-token-0123456789abcdef' }, dataDir);
  const flux = createFlux({ settings, flows: false, log: createLogger({ level: 'silent' }) });
  await flux.start();
  try {
    const engine = flux.modules.rules;
    const rule = await engine.create({ name: 'high temperature', trigger_script: SEED_HIGH_TEMPERATURE_RULE, action_type: 'flow' });
    const device = { id: 'sensor_0', product_id: 'p', product_key: 'sensor' };
    const full = await measureAsync(ms, 2000, (m) => engine.evaluate({ message: m, device }));
    const stats = (await engine.get(rule.id)).stats;
    rows.push({
      group: 'rules', name: 'high-temperature rule through the rule engine (filters, counters, script worker)', value: full, unit: 'runs/s', target: `>= ${TARGET / 1000}k/s`, met: full >= TARGET,
      note: `2,000 messages in flight; mean ${stats.mean_micros} µs, p99 ${stats.p99_micros} µs per run in the worker`,
    });
  } finally {
    await flux.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  if (process.env.BENCH_RULES_PLATFORM !== '0') rows.push(...(await platformThroughput(quick)));
  return rows;
};

export default bench;
