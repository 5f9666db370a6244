/** The SQLite store's recent points (runtime/storage/sqlite-recent.ts): appended, folded into ts_points in rounds, never lost or reordered. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { Worker } from 'node:worker_threads';
import { sqliteDriver } from '../../runtime/storage/index.ts';
import { RECENT_SCHEMA, RecentPoints } from '../../runtime/storage/sqlite-recent.ts';

const count = (db: DatabaseSync, table: string) => Number((db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get() as { n: number }).n);

describe('SQLite recent points', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-recent-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function table(maxRows = 1000) {
    const db = new DatabaseSync(path.join(dir, 'ts.db'));
    db.exec(`CREATE TABLE ts_series (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, metric TEXT NOT NULL, product TEXT NOT NULL);
      CREATE TABLE ts_points (series_id INTEGER NOT NULL, ts INTEGER NOT NULL, k INTEGER NOT NULL, num REAL, str TEXT, PRIMARY KEY (series_id, ts)) WITHOUT ROWID; ${RECENT_SCHEMA}`);
    const published: number[] = [];
    const recent = new RecentPoints(db, { everyMs: 100, sliceRows: 3, maxRows }, (n) => published.push(n));
    const write = (rows: [number, number, number][]) => {
      db.exec('BEGIN');
      for (const [sid, ts, v] of rows) recent.append(sid, ts, 0, v, null);
      db.exec('COMMIT');
      recent.added(rows.length);
    };
    const value = (sid: number, ts: number) => (db.prepare('SELECT num FROM ts_points WHERE series_id = ? AND ts = ?').get(sid, ts) as { num: number } | undefined)?.num;
    return { db, recent, write, value, published };
  }

  it('folds a round in slices between other writes, the last write of a (series, ts) winning, and empties the table', () => {
    const { db, recent, write, value, published } = table();
    write([[1, 10, 1], [2, 10, 1], [1, 10, 2], [3, 10, 1], [2, 20, 1], [1, 30, 1], [3, 30, 1]]);
    assert.equal(recent.rows, 7);
    assert.equal(recent.due(0), false, 'not before everyMs has passed since the last round');
    assert.equal(recent.step(1000), true); // the round starts: 7 rows copied, sorted
    write([[1, 10, 3], [4, 10, 1]]); // arrives during the round: waits for the next one
    let slices = 0;
    while (recent.step(1000)) slices++;
    assert.equal(slices, 2, 'three slices of at most 3 rows (the last one answers false)');
    assert.equal(value(1, 10), 2, 'the round folded its own rows in arrival order');
    assert.equal(value(4, 10), undefined);
    assert.equal(recent.rows, 2);
    assert.equal(count(db, 'ts_points_recent'), 2);
    assert.equal(recent.due(1050), false);
    recent.foldAll();
    assert.equal(value(1, 10), 3);
    assert.equal(value(4, 10), 1);
    assert.equal(count(db, 'ts_points'), 7);
    assert.equal(count(db, 'ts_points_recent'), 0);
    assert.equal(published.at(-1), 0);
    db.close();
  });

  it('a read folds the series it reads at once and takes them out of the round in progress, which cannot write older copies over them', () => {
    const { db, recent, write, value } = table();
    write([[1, 10, 1], [2, 10, 1], [1, 20, 1]]);
    recent.step(1000); // the round copies all three
    write([[1, 10, 2]]);
    recent.foldSeries([1]); // a read of series 1: its three rows, in arrival order
    assert.equal(value(1, 10), 2);
    assert.equal(value(1, 20), 1);
    assert.equal(value(2, 10), undefined, 'series 2 was not read');
    assert.equal(recent.rows, 1);
    while (recent.step(1000));
    assert.equal(value(1, 10), 2, 'the round no longer holds series 1');
    assert.equal(value(2, 10), 1);
    assert.equal(recent.rows, 0);
    assert.equal(count(db, 'ts_points_recent'), 0);
    recent.foldDevices(['nobody']);
    db.close();
  });

  it('a round takes at most maxRows rows, the oldest; foldAll runs rounds until none waits', () => {
    const { db, recent, write, value } = table(4);
    write(Array.from({ length: 10 }, (_, i): [number, number, number] => [1, i, i]));
    assert.equal(recent.due(0), true, 'past maxRows a round is due at once');
    recent.step(0); // a round copies the 4 oldest
    while (recent.step(0) && recent.rows === 10);
    assert.equal(recent.rows, 6);
    assert.deepEqual([0, 3, 4].map((ts) => value(1, ts)), [0, 3, undefined]);
    while (recent.step(0)); // still past maxRows: another round at once, then 2 rows wait for everyMs
    assert.equal(recent.rows, 2);
    assert.deepEqual([7, 8].map((ts) => value(1, ts)), [7, undefined]);
    recent.foldAll();
    assert.equal(recent.rows, 0);
    assert.equal(count(db, 'ts_points'), 10);
    assert.equal(count(db, 'ts_points_recent'), 0);
    db.close();
  });

  it('points a killed writer thread left unfolded are read after a restart, and a round runs on its own', async function () {
    this.timeout(20_000);
    const file = path.join(dir, 'ts.db');
    const threads: Worker[] = [];
    const a = sqliteDriver(file, { onThread: (w) => threads.push(w), fold: { everyMs: 3_600_000 } });
    await a.open();
    await a.insertSeries([{ device: 'd', metric: 'm', product: 'p' }]);
    await a.insertPoints(Array.from({ length: 500 }, (_, i) => ({ sid: 1, ts: i, k: 0, num: i, str: null })));
    await threads[0]!.terminate(); // as a kill: nothing folded, nothing closed
    const raw = new DatabaseSync(file, { readOnly: true });
    assert.equal(count(raw, 'ts_points'), 0, 'the points were still waiting');
    assert.equal(count(raw, 'ts_points_recent'), 500);
    raw.close();

    const b = sqliteDriver(file, { fold: { everyMs: 50 } });
    await b.open();
    assert.equal((await b.all('SELECT COUNT(*) AS n FROM ts_points'))[0]!.n, 500, 'folded as the store opened');
    await b.insertPoints([{ sid: 1, ts: 1000, k: 0, num: 1, str: null }]);
    const deadline = Date.now() + 5000;
    while (Number((await b.all('SELECT COUNT(*) AS n FROM ts_points_recent'))[0]!.n) > 0) {
      assert.ok(Date.now() < deadline, 'a round folded the new point without a read asking');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal((await b.all('SELECT COUNT(*) AS n FROM ts_points'))[0]!.n, 501);
    await b.close();
    await a.close();
  });
});
