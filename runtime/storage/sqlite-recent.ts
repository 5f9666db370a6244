/**
 * The SQLite store's recent points: commits append to `ts_points_recent`, a plain rowid table, and
 * rounds fold it into `ts_points` sorted by series.
 *
 * `ts_points` is clustered on (series_id, ts). A commit of a few hundred points over 1,000 series
 * rewrote one B-tree page per point: 4 KiB in the WAL and again in the database file, ~11 µs of the
 * writer's and checkpointer's CPU per point at 15k msg/s (docs/benchmarks.md "Session 12"). An
 * append writes a few pages per commit. Every `everyMs` a round copies what the table holds, sorted
 * by (series_id, ts, arrival), into a temporary table. It then folds that into `ts_points` one
 * slice of `sliceRows` at a time, between the writer's other calls, so a series' page is written
 * once a round and no call waits long behind it.
 *
 * Reads first fold the recent points of the series they read (`foldSeries`), so they see every
 * committed write. A crash loses nothing: a round deletes its rows in the commit of its last slice
 * (a round cut short is applied again: the same rows in the same order give the same result), and
 * whatever the table holds at open is folded then.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';

export const RECENT_SCHEMA = `
CREATE TABLE IF NOT EXISTS ts_points_recent (
  series_id INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  k INTEGER NOT NULL,
  num REAL,
  str TEXT
);`;

export interface FoldOptions {
  /** how often a round starts while points wait (default 500 ms) */
  everyMs: number;
  /** rows folded per slice (default 1,000: a few ms) */
  sliceRows: number;
  /** past this many waiting rows a round starts at once, and a round takes at most this many (default 50,000) */
  maxRows: number;
}

export const FOLD_DEFAULTS: FoldOptions = { everyMs: 500, sliceRows: 1000, maxRows: 50_000 };

const COLUMNS = 'series_id, ts, k, num, str';

export class RecentPoints {
  readonly #db: DatabaseSync;
  readonly #opts: FoldOptions;
  readonly #published: (rows: number) => void;
  readonly #append: StatementSync;
  readonly #lastRowid: StatementSync;
  readonly #clearRound: StatementSync;
  readonly #fillRound: StatementSync;
  readonly #foldSlice: StatementSync;
  readonly #dropRound: StatementSync;
  readonly #foldSeries: StatementSync;
  readonly #dropSeries: StatementSync;
  readonly #dropSeriesRound: StatementSync;
  readonly #seriesOf: StatementSync;
  #rows: number;
  /** the round being folded: recent rows up to `upTo`, copied into the temporary table as rowids from..last */
  #round: { upTo: number; from: number; last: number } | null = null;
  #roundEnded = 0;

  /**
   * `published` learns the number of waiting rows after every change (the main thread reads it).
   * `openedAt` (ms): the first round is due `everyMs` after it, as if a round had ended then.
   */
  constructor(db: DatabaseSync, opts: FoldOptions, published: (rows: number) => void = () => {}, openedAt = 0) {
    this.#db = db;
    this.#opts = opts;
    this.#published = published;
    this.#roundEnded = openedAt;
    // the round's copy lives in memory: it is rebuilt from ts_points_recent after a crash
    db.exec(`PRAGMA temp_store = MEMORY; CREATE TEMP TABLE IF NOT EXISTS ts_points_round (${COLUMNS});`);
    this.#append = db.prepare(`INSERT INTO ts_points_recent (${COLUMNS}) VALUES (?, ?, ?, ?, ?)`);
    // the round's last row: the maxRows-th waiting one, or the newest (a round's copy and its stall stay bounded)
    this.#lastRowid = db.prepare('SELECT COALESCE((SELECT rowid FROM ts_points_recent ORDER BY rowid LIMIT 1 OFFSET ?), (SELECT MAX(rowid) FROM ts_points_recent)) AS r');
    this.#clearRound = db.prepare('DELETE FROM temp.ts_points_round');
    this.#fillRound = db.prepare(`INSERT INTO temp.ts_points_round (${COLUMNS}) SELECT ${COLUMNS} FROM ts_points_recent WHERE rowid <= ? ORDER BY series_id, ts, rowid`);
    this.#foldSlice = db.prepare(`INSERT OR REPLACE INTO ts_points (${COLUMNS}) SELECT ${COLUMNS} FROM temp.ts_points_round WHERE rowid BETWEEN ? AND ? ORDER BY rowid`);
    this.#dropRound = db.prepare('DELETE FROM ts_points_recent WHERE rowid <= ?');
    this.#foldSeries = db.prepare(
      `INSERT OR REPLACE INTO ts_points (${COLUMNS}) SELECT ${COLUMNS} FROM ts_points_recent WHERE series_id IN (SELECT value FROM json_each(?)) ORDER BY series_id, ts, rowid`,
    );
    this.#dropSeries = db.prepare('DELETE FROM ts_points_recent WHERE series_id IN (SELECT value FROM json_each(?))');
    this.#dropSeriesRound = db.prepare('DELETE FROM temp.ts_points_round WHERE series_id IN (SELECT value FROM json_each(?))');
    this.#seriesOf = db.prepare('SELECT id FROM ts_series WHERE device_id IN (SELECT value FROM json_each(?))');
    this.#rows = Number((db.prepare('SELECT COUNT(*) AS n FROM ts_points_recent').get() as { n: number }).n);
    this.#published(this.#rows);
  }

  /** rows waiting to be folded */
  get rows(): number {
    return this.#rows;
  }

  /** One point, inside the caller's transaction; `added(n)` after its commit. */
  append(sid: number | null, ts: number | null, k: number | null, num: number | null, str: string | null): void {
    this.#append.run(sid, ts, k, num, str);
  }

  added(n: number): void {
    this.#rows += n;
    this.#published(this.#rows);
  }

  /** True while folding work is due at `now`: a round to start, or a slice of the current one. */
  due(now: number): boolean {
    return this.#round !== null || (this.#rows > 0 && (now - this.#roundEnded >= this.#opts.everyMs || this.#rows >= this.#opts.maxRows));
  }

  /**
   * One unit of folding, if due: starts a round (copies and sorts the waiting rows), or folds the
   * round's next slice (the last one also deletes the round's rows). Answers whether more is due.
   * A failure (a full disk) ends the round; its rows wait for the next one.
   */
  step(now: number): boolean {
    if (!this.due(now)) return false;
    this.#advance(now);
    return this.due(now);
  }

  /** Folds every waiting row now, round after round (at open and at close). */
  foldAll(): void {
    this.#round = null;
    while (this.#rows > 0) {
      const before = this.#rows;
      this.#advance(Date.now()); // a round starts
      while (this.#round) this.#advance(Date.now());
      if (this.#rows >= before) return; // it folded nothing (a failure): later rounds try again
    }
  }

  #advance(now: number): void {
    const r = this.#round;
    try {
      if (!r) {
        const upTo = Number((this.#lastRowid.get(this.#opts.maxRows - 1) as { r: number | null }).r ?? 0);
        this.#clearRound.run();
        const copied = Number(this.#fillRound.run(upTo).changes);
        this.#round = { upTo, from: 1, last: copied };
        return;
      }
      const to = Math.min(r.from + this.#opts.sliceRows - 1, r.last);
      const final = to >= r.last;
      this.#db.exec('BEGIN');
      if (to >= r.from) this.#foldSlice.run(r.from, to);
      const dropped = final ? Number(this.#dropRound.run(r.upTo).changes) : 0;
      this.#db.exec('COMMIT');
      if (final) this.#endRound(now, dropped);
      else r.from = to + 1;
    } catch {
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      this.#endRound(now, 0);
    }
  }

  /**
   * Folds the waiting points of these series now, in arrival order, and takes them out of the
   * table and out of the round in progress (which would otherwise write its older copies over them).
   */
  foldSeries(ids: number[]): void {
    if (this.#rows === 0 || ids.length === 0) return;
    const list = JSON.stringify(ids);
    let dropped: number;
    this.#db.exec('BEGIN');
    try {
      this.#foldSeries.run(list);
      dropped = Number(this.#dropSeries.run(list).changes);
      this.#dropSeriesRound.run(list);
      this.#db.exec('COMMIT');
    } catch (err) {
      this.#db.exec('ROLLBACK');
      throw err;
    }
    this.#rows -= dropped;
    this.#published(this.#rows);
  }

  foldDevices(devices: string[]): void {
    if (this.#rows === 0 || devices.length === 0) return;
    this.foldSeries((this.#seriesOf.all(JSON.stringify(devices)) as { id: number }[]).map((r) => Number(r.id)));
  }

  #endRound(now: number, dropped: number): void {
    this.#round = null;
    this.#roundEnded = now;
    this.#clearRound.run();
    this.#rows -= dropped;
    this.#published(this.#rows);
  }
}
