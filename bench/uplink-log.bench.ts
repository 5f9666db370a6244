/**
 * The durable uplink log: CPU per appended uplink and acknowledgement latency at a paced 30k
 * uplinks/s for each fsync policy (in process, the log alone), and a real FLUX restarted on a data
 * dir whose log holds 100,000 unhandled uplinks: time to the first replayed uplink stored and to
 * all of them. And a plugin replay (runtime/plugin-compare) of 100,000 logged Modbus frames through
 * modbus.wasm, read from the log's segments, decoded by the active and the candidate version and
 * compared, in process.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { Bench, BenchRow } from './types.ts';
import { createUplinkLog, type FsyncPolicy } from '../runtime/uplink-log/index.ts';
import { provision, startFlux, tempDir } from './lib/flux.ts';
import { loadSettings } from '../settings.ts';
import { createLogger } from '../runtime/log/index.ts';
import { createRegistry } from '../runtime/registry/index.ts';
import { createDeviceBus } from '../runtime/bus/index.ts';
import { createMetrics } from '../runtime/metrics/index.ts';
import { createTracer } from '../runtime/trace/index.ts';
import type { FluxContext } from '../runtime/app/index.ts';
import { createPluginHost } from '../runtime/plugins/index.ts';
import { createPluginCompare } from '../runtime/plugin-compare/index.ts';

/**
 * Paces `rate` appends/s for `seconds` and answers the process CPU per append. With `fsync: 'none'`
 * the same loop runs without a log (each callback queued as a microtask): the generator's own cost,
 * which the rows subtract so they show what the log adds.
 */
async function appendCost(fsync: FsyncPolicy | 'none', rate: number, seconds: number, acknowledged = true): Promise<{ cpuUs: number; p99Ms: number; groups: number; syncs: number; appends: number }> {
  const dir = tempDir('flux-bench-log-');
  const log = createUplinkLog({ dir, fsync: fsync === 'none' ? 'os' : fsync, retentionMs: 3_600_000, maxBytes: 1024 ** 3 });
  await log.open();
  let baselineHandled = 0;
  const append: typeof log.append =
    fsync === 'none'
      ? (_input, cb) => {
          queueMicrotask(() => cb(null, ++baselineHandled));
          return baselineHandled;
        }
      : log.append;
  const payload = Buffer.from('01030201c50000', 'hex');
  const lat: number[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let n = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(rate * seconds, Math.floor(((now - t0) / 1000) * rate));
      for (; n < due; n++) {
        const at = performance.now();
        append(
          { id: `m${n}`, deviceId: `bench_${n % 1000}`, productId: 'p', productKey: 'boiler', transport: 'mqtt', type: 'properties', topic: `/boiler/bench_${n % 1000}/properties/report`, ts: Date.now(), payload },
          () => {
            lat.push(performance.now() - at);
            log.handled(lat.length);
          },
          acknowledged,
        );
      }
      if (n >= rate * seconds) setTimeout(resolve, 200);
      else setTimeout(tick, 1);
    };
    tick();
  });
  const cpu = process.cpuUsage(cpu0);
  const { groups, syncs, appends } = log.stats();
  await log.close();
  fs.rmSync(dir, { recursive: true, force: true });
  lat.sort((a, b) => a - b);
  return { cpuUs: (cpu.user + cpu.system) / n, p99Ms: lat[Math.floor(lat.length * 0.99)] ?? NaN, groups, syncs, appends };
}

/** Writes `count` unhandled uplinks for provisioned devices into a data dir's log, as a crash would leave them. */
async function fillLog(dataDir: string, devices: string[], count: number): Promise<void> {
  const reg = new DatabaseSync(path.join(dataDir, 'flux.db'), { readOnly: true });
  const productId = String((reg.prepare("SELECT id FROM products WHERE key = 'meter'").get() as { id: string }).id);
  reg.close();
  const log = createUplinkLog({ dir: path.join(dataDir, 'uplink-log'), fsync: 'os', retentionMs: 3_600_000, maxBytes: 1024 ** 3 });
  await log.open();
  const base = Date.now() - 60_000;
  for (let i = 0; i < count; i++) {
    const d = devices[i % devices.length]!;
    log.append({ id: `replay${i}`, deviceId: d, productId, productKey: 'meter', transport: 'mqtt', type: 'properties', topic: `/meter/${d}/properties/report`, ts: base, payload: Buffer.from(JSON.stringify({ values: { n: i }, ts: base + Math.floor(i / devices.length) })) }, () => {});
    if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
  }
  await log.close();
}

function storedRows(dataDir: string): number {
  try {
    const db = new DatabaseSync(path.join(dataDir, 'telemetry.db'), { readOnly: true });
    // stored: folded into ts_points or still waiting in ts_points_recent (runtime/storage/sqlite-recent.ts)
    const n = (db.prepare('SELECT COUNT(*) AS n FROM (SELECT series_id, ts FROM ts_points UNION SELECT series_id, ts FROM ts_points_recent)').get() as { n: number }).n;
    db.close();
    return n;
  } catch {
    return 0;
  }
}

const bench: Bench = async ({ quick }) => {
  const rows: BenchRow[] = [];
  const seconds = quick ? 2 : 5;
  // the median of three runs each: one run on a shared 2-core machine swings by a microsecond
  const median = async (fsync: FsyncPolicy | 'none', acknowledged = true) => {
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await appendCost(fsync, 30_000, seconds, acknowledged));
    return runs.sort((a, b) => a.cpuUs - b.cpuUs)[1]!;
  };
  const base = await median('none');
  rows.push({ group: 'uplink log', name: 'the paced generator alone at 30k/s (no log), CPU per uplink', value: base.cpuUs, unit: 'µs', note: 'subtracted from the rows below' });
  for (const fsync of ['always', 'os'] as const) {
    const r = await median(fsync);
    const added = r.cpuUs - base.cpuUs;
    // 15% of the ~50 µs the whole pipeline spends per stored message (pipeline.bench.ts, ingest)
    rows.push({ group: 'uplink log', name: `append at 30k/s: CPU the log adds per uplink (FLUX_LOG_FSYNC=${fsync})`, value: added, unit: 'µs', target: '<= 7.5 µs (15% of ~50 µs)', met: added <= 7.5, note: `${r.appends} appends in ${r.groups} group commits, ${r.cpuUs.toFixed(1)} µs with the generator` });
    rows.push({ group: 'uplink log', name: `append → durable, p99 (FLUX_LOG_FSYNC=${fsync})`, value: r.p99Ms, unit: 'ms' });
  }
  // MQTT QoS 0 and Modbus polls: nobody is acknowledged, so their groups are written without an fdatasync each
  const q0 = await median('always', false);
  const q0added = q0.cpuUs - base.cpuUs;
  rows.push({ group: 'uplink log', name: 'append at 30k/s, unacknowledged (MQTT QoS 0, Modbus polls): CPU the log adds per uplink (FLUX_LOG_FSYNC=always)', value: q0added, unit: 'µs', target: '<= 7.5 µs (15% of ~50 µs)', met: q0added <= 7.5, note: `${q0.appends} appends in ${q0.groups} group commits, ${q0.syncs} fdatasyncs, ${q0.cpuUs.toFixed(1)} µs with the generator` });

  try {
    rows.push(await pluginReplayRow(quick ? 20_000 : 100_000));
  } catch (err) {
    rows.push({ group: 'uplink log', name: 'plugin replay', value: NaN, unit: '', note: `FAILED: ${(err as Error).message.split('\n')[0]}` });
  }
  try {
    rows.push(...(await restartRows(quick ? 20_000 : 100_000)));
  } catch (err) {
    rows.push({ group: 'uplink log', name: 'restart with unhandled uplinks', value: NaN, unit: '', note: `FAILED: ${(err as Error).message.split('\n')[0]}` });
  }
  return rows;
};

async function restartRows(count: number): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const dataDir = tempDir('flux-bench-replay-');
  const devices = (await provision(dataDir, { productKey: 'meter', count: 100, prefix: 'meter', metadata: { properties: [{ id: 'n', type: 'int' }] } })).map((d) => d.username);
  await fillLog(dataDir, devices, count);
  const t0 = performance.now();
  const flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' }, { dataDir, timeoutMs: 120_000 });
  const ready = performance.now() - t0;
  let first = NaN;
  let all = NaN;
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const n = storedRows(dataDir);
    if (n > 0 && Number.isNaN(first)) first = performance.now() - t0;
    if (n >= count) {
      all = performance.now() - t0;
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await flux.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
  rows.push({ group: 'uplink log', name: `restart with ${count.toLocaleString('en-US')} unhandled uplinks: first replayed uplink stored`, value: first / 1000, unit: 's', target: '< 5 s', met: first < 5000, note: 'from spawning the process' });
  rows.push({ group: 'uplink log', name: `restart with ${count.toLocaleString('en-US')} unhandled uplinks: all stored`, value: all / 1000, unit: 's', note: `ready line (device access open) after ${(ready / 1000).toFixed(1)} s` });
  return rows;
}

/** `POST /api/plugins/modbus/replay`'s work without HTTP: `count` frames from the log through two versions of modbus.wasm, diffed. */
export async function pluginReplayRow(count: number): Promise<BenchRow> {
  const dataDir = tempDir('flux-bench-plugin-replay-');
  const settings = loadSettings({ FLUX_DATA_DIR: dataDir, FLUX_PLUGINS_DIR: path.join(dataDir, 'none'), FLUX_LOG_LEVEL: 'error' });
  const logger = createLogger({ level: 'error' });
  const registry = createRegistry({ db: settings.db, log: logger });
  await registry.start();
  const metrics = createMetrics();
  const ctx = { settings, log: logger, registry, bus: createDeviceBus(logger), metrics, trace: createTracer(), adminToken: 'x'.repeat(32), services: new Map() } as unknown as FluxContext;
  const host = createPluginHost(ctx, { watch: false });
  await host.start();
  const log = createUplinkLog({ dir: path.join(dataDir, 'uplink-log'), fsync: 'os', retentionMs: 3_600_000, maxBytes: 1024 ** 3 });
  await log.open();
  const compare = createPluginCompare({ host, log, registry, metrics, logger });
  try {
    const wasm = fs.readFileSync(path.join(import.meta.dirname, '..', 'plugins', 'dist', 'modbus.wasm'));
    await host.install('modbus', wasm, 'api');
    // the same module with another deadline is a version of its own: the candidate
    const candidate = (await host.install('modbus', wasm, 'api', { deadline_ms: 60 }, { activate: false })).version.version;
    const product = await registry.products.create({ key: 'boiler', name: 'Boiler', protocol_plugin_id: 'modbus' });
    const t = Date.now() - 60_000;
    for (let i = 0; i < count; i++) {
      const payload = Buffer.from(`01030200000000`, 'hex');
      payload.writeUInt16BE(i & 0xffff, 3);
      log.append({ id: `r${i}`, deviceId: `boiler_${i % 100}`, productId: product.id, productKey: 'boiler', transport: 'mqtt', type: 'properties', topic: `/boiler/boiler_${i % 100}/properties/report`, ts: t + Math.floor(i / 100), payload }, () => {});
      if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
    }
    await new Promise((r) => setTimeout(r, 200));
    // a first, short replay spawns the replay's worker threads (kept for the next replay) and warms the JIT
    await (await compare.replays.start('modbus', { version: candidate, from: t, to: Date.now(), limit: 5000 })).done;
    const t0 = performance.now();
    // process-wide: the main thread and the replay's worker threads
    const cpu0 = process.cpuUsage();
    const report = await (await compare.replays.start('modbus', { version: candidate, from: t, to: Date.now(), limit: count })).done;
    const cpu = process.cpuUsage(cpu0);
    const secs = (performance.now() - t0) / 1000;
    const cpuUs = (cpu.user + cpu.system) / count;
    if (report.total !== count || report.same !== count) throw new Error(`replay compared ${report.total} frames, ${report.same} the same (expected ${count})`);
    const rate = count / secs;
    return { group: 'uplink log', name: `plugin replay, ${count.toLocaleString('en-US')} logged frames through modbus.wasm, diffed`, value: rate, unit: 'frames/s', target: '>= 100,000/s', met: rate >= 100_000, note: `read from the log + decoded by the active and the candidate version + compared, after a first replay (its worker threads are kept for the next); CPU ${cpuUs.toFixed(1)} µs per frame, all threads (${Math.round(1e6 / cpuUs).toLocaleString('en-US')} frames per CPU-second); ${os.availableParallelism()} cores, load ${os.loadavg()[0]!.toFixed(1)}` };
  } finally {
    await compare.stop();
    await log.close();
    await host.stop();
    await registry.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

export default bench;
