/**
 * Replays the SQLite store's write pattern outside FLUX and prints the commit times: the
 * `ts_points` table as runtime/storage/sqlite.ts creates it (WAL, synchronous=NORMAL), 3,000 series,
 * 450 points per commit, 66 commits a second for 20 s. Where the WAL is checkpointed is the
 * argument (docs/benchmarks.md "SQLite checkpoints off the commit path"):
 *
 *   node bench/lib/sqlite-commit.ts writer [PAGES]              SQLite's checkpoint in the committing connection (default 1,000 pages)
 *   node bench/lib/sqlite-commit.ts thread EVERY_MS [RESTART [PAGES]]   another thread runs PASSIVE every EVERY_MS and
 *                                                                 RESTART once RESTART pages are copied; the committing connection
 *                                                                 checkpoints only past PAGES (default never; FLUX: 2 × RESTART)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';

const [mode = 'writer', a, b, c3] = process.argv.slice(2);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-sqlite-commit-'));
const file = path.join(dir, 'ts.db');
const db = new DatabaseSync(file);
const autocheckpoint = mode === 'writer' ? Number(a ?? 1000) : Number(c3 ?? 0);
db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 2000; PRAGMA cache_size = -32000; PRAGMA wal_autocheckpoint = ${autocheckpoint};
CREATE TABLE ts_points (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, k INTEGER NOT NULL, num REAL, str TEXT, PRIMARY KEY (series_id, ts)) WITHOUT ROWID;`);
const insert = db.prepare('INSERT OR REPLACE INTO ts_points (series_id, ts, k, num, str) VALUES (?, ?, ?, ?, ?)');

const checkpointer =
  mode === 'thread'
    ? new Worker(
        `const { DatabaseSync } = require('node:sqlite'); const { workerData, parentPort } = require('node:worker_threads');
         const db = new DatabaseSync(workerData.file); db.exec('PRAGMA busy_timeout = 100');
         const t = setInterval(() => { try { const r = db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get();
           if (r.log >= workerData.restart && r.checkpointed === r.log) db.prepare('PRAGMA wal_checkpoint(RESTART)').get(); } catch {} }, workerData.every);
         parentPort.on('message', () => { clearInterval(t); db.close(); process.exit(0); });`,
        { eval: true, workerData: { file, every: Number(a ?? 100), restart: Number(b ?? Infinity) } },
      )
    : undefined;

const series = 3000, perCommit = 450, seconds = 20, perSecond = 66;
const times: number[] = [];
let ts = Date.now() * 1000;
const t0 = Date.now();
for (let c = 0; c < seconds * perSecond; c++) {
  const start = performance.now();
  db.exec('BEGIN');
  for (let i = 0; i < perCommit; i++) insert.run((c * perCommit + i) % series, ts++, 0, Math.random(), null);
  db.exec('COMMIT');
  times.push(performance.now() - start);
  const wait = t0 + ((c + 1) * 1000) / perSecond - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
checkpointer?.postMessage('stop');
times.sort((x, y) => x - y);
const q = (x: number) => times[Math.floor(x * (times.length - 1))]!.toFixed(1);
const wal = (fs.statSync(`${file}-wal`).size / 1e6).toFixed(1);
console.log(`${[mode, a, b, c3].filter(Boolean).join(' ')}: commit p50 ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)} max ${q(1)} ms; WAL file ${wal} MB`);
db.close();
fs.rmSync(dir, { recursive: true, force: true });
