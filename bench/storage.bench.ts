/**
 * Storage benchmarks: sustained write rate through the store per backend (batches of 5,000 points,
 * as the writer hands them over) and the latency of aggregating a 24 h, 1-per-second series
 * (86,400 points) to 1-minute averages. MariaDB/PostgreSQL use throw-away databases on this machine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createStore, type Point, type TimeSeriesStore } from '../runtime/storage/index.ts';
import { createTestDatabase, type TestDatabase } from '../test/helpers/databases.ts';
import type { Bench, BenchRow } from './types.ts';

const DAY0 = Date.UTC(2026, 0, 1);

async function writeRate(store: TimeSeriesStore, seconds: number): Promise<number> {
  const devices = 100, metrics = 5, batch = 5000;
  let n = 0;
  let t = DAY0;
  const deadline = performance.now() + seconds * 1000;
  const start = performance.now();
  while (performance.now() < deadline) {
    const points: Point[] = new Array(batch);
    for (let i = 0; i < batch; i++) {
      const d = (n + i) % devices;
      if (d === 0 && i % (devices * metrics) === 0) t += 1000;
      points[i] = { device: `bench-${d}`, product: 'bench', metric: `m${Math.floor((n + i) / devices) % metrics}`, ts: t, value: ((n + i) % 1000) / 10 };
    }
    await store.write(points);
    n += batch;
  }
  // until every point is readable: SQLite folds what waits in its recent-points table (runtime/storage/sqlite-recent.ts)
  await store.latestMany(Array.from({ length: devices }, (_, d) => `bench-${d}`));
  return n / ((performance.now() - start) / 1000);
}

async function aggLatency(store: TimeSeriesStore, runs: number): Promise<number> {
  const points: Point[] = [];
  for (let s = 0; s < 86_400; s++) points.push({ device: 'day-series', product: 'bench', metric: 'temp', ts: DAY0 + s * 1000, value: 20 + Math.sin(s / 600) * 5 });
  for (let i = 0; i < points.length; i += 5000) await store.write(points.slice(i, i + 5000));
  const q = { device: 'day-series', metrics: ['temp'], from: DAY0, to: DAY0 + 86_400_000, interval: 60_000, aggs: ['avg' as const] };
  const rows = await store.aggregate(q);
  if (rows.length !== 1440) throw new Error(`expected 1440 buckets, got ${rows.length}`);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await store.aggregate(q);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

const bench: Bench = async ({ quick }) => {
  const rows: BenchRow[] = [];
  const seconds = quick ? 2 : 5;
  const runs = quick ? 5 : 21;
  const targets: Record<string, number> = { sqlite: 200_000, mysql: 50_000, postgres: 50_000 };
  for (const dialect of ['sqlite', 'mysql', 'postgres'] as const) {
    let dir: string | undefined;
    let db: TestDatabase | undefined;
    let store: TimeSeriesStore;
    try {
      if (dialect === 'sqlite') {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-bench-ts-'));
        store = createStore({ dialect, url: 'sqlite:', file: path.join(dir, 'telemetry.db') });
      } else {
        db = await createTestDatabase(dialect, 'flux_bench_ts');
        store = createStore({ dialect, url: db.url });
      }
      await store.open();
      const rate = await writeRate(store, seconds);
      rows.push({ group: 'storage', name: `write, ${dialect}, batches of 5,000`, value: rate, unit: 'points/s', target: `>= ${targets[dialect]! / 1000}k/s`, met: rate >= targets[dialect]!, note: store.info.layout.replace(/ \/.*$/, '') });
      const ms = await aggLatency(store, runs);
      rows.push({ group: 'storage', name: `86,400-point day → 1-min avg, ${dialect}`, value: ms, unit: 'ms (median)', ...(dialect === 'sqlite' ? { target: '< 50 ms', met: ms < 50 } : {}) });
      await store.close();
    } catch (err) {
      rows.push({ group: 'storage', name: `${dialect}`, value: NaN, unit: '', note: `FAILED: ${(err as Error).message}` });
    } finally {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      await db?.drop().catch(() => {});
    }
  }
  return rows;
};

export default bench;
