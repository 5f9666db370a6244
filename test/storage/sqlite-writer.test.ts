/** The SQLite store's writer thread (runtime/storage/sqlite.ts): lazy, ordered, and what a dead thread does to a write. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { DataError, sqliteDriver } from '../../runtime/storage/index.ts';

describe('SQLite writer thread', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-sqlw-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('starts with the first write, not at open, and its commits are visible to reads on the main thread', async () => {
    const threads: Worker[] = [];
    const db = sqliteDriver(path.join(dir, 'ts.db'), { onThread: (w) => threads.push(w) });
    await db.open();
    assert.equal(threads.length, 0);
    assert.equal((await db.all('SELECT COUNT(*) AS n FROM ts_points'))[0]!.n, 0);
    await db.insertSeries([{ device: 'd1', metric: 't', product: 'p' }]);
    const [{ id }] = (await db.all('SELECT id FROM ts_series WHERE device_id = ?', ['d1'])) as [{ id: number }];
    // many calls at once keep their order: the last write of a (series, ts) wins
    await Promise.all(Array.from({ length: 50 }, (_, i) => db.insertPoints([{ sid: id, ts: 1000, k: 0, num: i, str: null }])));
    await db.visible!({ series: [id] });
    assert.deepEqual((await db.all('SELECT num FROM ts_points WHERE series_id = ?', [id])).map((r) => r.num), [49]);
    assert.equal(threads.length, 1);
    assert.notEqual(threads[0]!.threadId, 0);
    await db.close();
  });

  it('answers a constraint violation as a DataError, as the inline connection did', async () => {
    const db = sqliteDriver(path.join(dir, 'ts.db'));
    await db.open();
    await assert.rejects(db.insertPoints([{ sid: 1, ts: 1, k: null as unknown as number, num: 1, str: null }]), (err: Error) => err instanceof DataError && /NOT NULL/.test(err.message));
    await db.close();
  });

  it('a thread that dies fails its pending writes as an outage (not a DataError), and the next write runs in a new thread', async () => {
    const threads: Worker[] = [];
    const db = sqliteDriver(path.join(dir, 'ts.db'), { onThread: (w) => threads.push(w) });
    await db.open();
    await db.insertSeries([{ device: 'd1', metric: 't', product: 'p' }]);
    const rows = Array.from({ length: 200_000 }, (_, i) => ({ sid: 1, ts: i, k: 0, num: i, str: null }));
    const pending = db.insertPoints(rows);
    void threads[0]!.terminate();
    await assert.rejects(pending, (err: Error) => !(err instanceof DataError) && /writer thread stopped/.test(err.message));
    // the writer (runtime/storage/writer.ts) retries a failed batch: here, by hand
    await db.insertPoints(rows.slice(0, 10));
    assert.equal(threads.length, 2);
    await db.visible!({ series: [1] });
    const [{ n }] = (await db.all('SELECT COUNT(*) AS n FROM ts_points WHERE ts < 10')) as [{ n: number }];
    assert.equal(n, 10);
    await db.close();
  });

  it('keeps checkpoints off the commits and the WAL bounded: a thread of its own copies it and rewinds it', async function () {
    this.timeout(30_000);
    const file = path.join(dir, 'ts.db');
    const db = sqliteDriver(file, { checkpoints: { everyMs: 20, restartFrames: 256 } });
    await db.open();
    await db.insertSeries(Array.from({ length: 100 }, (_, i) => ({ device: `d${i}`, metric: 't', product: 'p' })));
    // 300 batches, one every 10 ms as the store flushes, each touching 100 series' leaf pages:
    // ~30,000 WAL pages (~120 MiB) written in all, against a mark of 256 pages (1 MiB)
    let walMax = 0;
    for (let b = 0; b < 300; b++) {
      const next = new Promise((r) => setTimeout(r, 10));
      await db.insertPoints(Array.from({ length: 100 }, (_, i) => ({ sid: i + 1, ts: b, k: 0, num: b, str: null })));
      walMax = Math.max(walMax, fs.statSync(`${file}-wal`).size);
      await next;
    }
    await db.visible!({ series: Array.from({ length: 100 }, (_, i) => i + 1) });
    const [{ n }] = (await db.all('SELECT COUNT(*) AS n FROM ts_points')) as [{ n: number }];
    assert.equal(n, 300 * 100);
    const [{ wal_autocheckpoint: readerDefault }] = (await db.all('PRAGMA wal_autocheckpoint')) as [{ wal_autocheckpoint: number }];
    assert.equal(readerDefault, 1000, "the main thread's reader keeps SQLite's default (it never commits)");
    assert.ok(walMax > 0 && walMax < 4 * 1024 * 1024, `the WAL stayed bounded: at most ${(walMax / 1048576).toFixed(1)} MiB`);
    await db.close();
    assert.ok(!fs.existsSync(`${file}-wal`) || fs.statSync(`${file}-wal`).size === 0, 'closed: the WAL is checkpointed away');
  });
});
