/** SQLite backend (default): node:sqlite in its own file, WAL, prepared statements, one transaction per batch, written by a thread of its own. */
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import { SqlStore, type EventRow, type PointRow, type Row, type SqlDriver } from './sql-store.ts';
import { FOLD_DEFAULTS, RECENT_SCHEMA, RecentPoints, type FoldOptions } from './sqlite-recent.ts';
import { DataError } from './types.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ts_series (
  id INTEGER PRIMARY KEY,
  device_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  product TEXT NOT NULL,
  UNIQUE (device_id, metric)
);
CREATE INDEX IF NOT EXISTS ts_series_product ON ts_series (product);
-- WITHOUT ROWID: the table is the (series_id, ts) B-tree, so a range scan reads adjacent pages.
CREATE TABLE IF NOT EXISTS ts_points (
  series_id INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  k INTEGER NOT NULL,
  num REAL,
  str TEXT,
  PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ts_events (
  device_id TEXT NOT NULL,
  ts INTEGER NOT NULL,
  event_id TEXT NOT NULL,
  msg_id TEXT NOT NULL,
  product TEXT NOT NULL,
  payload TEXT NOT NULL,
  flagged INTEGER NOT NULL,
  problem TEXT,
  PRIMARY KEY (device_id, ts, event_id, msg_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ts_events_product ON ts_events (product, ts);
${RECENT_SCHEMA}
`;

function sqliteError(err: unknown): Error {
  const code = (err as { errcode?: number }).errcode;
  // Constraint, mismatch and too-big errors are about the data; anything else (busy, I/O, full disk) may pass.
  if (code !== undefined && [19, 20, 18].includes(code & 0xff)) return new DataError((err as Error).message, { cause: err });
  return err as Error;
}

/**
 * Points as they cross to the writer thread: sid, ts, k, num of each row in one transferred
 * Float64Array (NaN for null: SQLite stores a NaN as NULL anyway), and the strings only when the
 * batch has one. A structured clone of an object per row cost the main thread ~0.15 ms per flush
 * at 15k msg/s (docs/benchmarks.md "Session 9").
 */
export interface PointColumns {
  n: number;
  numbers: Float64Array;
  strings: (string | null)[] | null;
}

export function pointColumns(rows: PointRow[]): PointColumns {
  const numbers = new Float64Array(rows.length * 4);
  let strings: (string | null)[] | null = null;
  for (let i = 0, j = 0; i < rows.length; i++, j += 4) {
    const r = rows[i]!;
    numbers[j] = r.sid ?? NaN;
    numbers[j + 1] = r.ts ?? NaN;
    numbers[j + 2] = r.k ?? NaN;
    numbers[j + 3] = r.num ?? NaN;
    if (r.str !== null && r.str !== undefined) (strings ??= new Array<string | null>(rows.length).fill(null))[i] = r.str;
  }
  return { n: rows.length, numbers, strings };
}

const orNull = (x: number): number | null => (Number.isNaN(x) ? null : x);

/** The writes a connection runs (in the writer thread). */
type WriteOp = 'insertSeries' | 'insertPoints' | 'deleteChunk' | 'insertEvents' | 'deleteEvents' | 'foldSeries' | 'foldDevices' | 'foldAll';
export interface WriteCall {
  id: number;
  op: WriteOp | 'close';
  args: unknown[];
}
export type WriteReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string; data: boolean };

/**
 * One synchronous node:sqlite connection to the time-series file (WAL, prepared statements, a
 * transaction per call). The writer's connection (`writes`) appends points to the recent-points
 * table and folds them into `ts_points` (runtime/storage/sqlite-recent.ts); `published` learns how
 * many wait.
 */
export function sqliteConnection(file: string, writes?: { fold: FoldOptions; published(rows: number): void }) {
  let db: DatabaseSync | undefined;
  let recent: RecentPoints | undefined;
  const stmts = new Map<string, StatementSync>();
  let insertSeries: StatementSync;
  let deleteChunk: StatementSync;
  let insertEvent: StatementSync;
  let deleteEvents: StatementSync;

  const open = (): DatabaseSync => {
    if (!db) throw new Error('the SQLite time-series store is closed');
    return db;
  };
  const prepare = (sql: string): StatementSync => {
    let s = stmts.get(sql);
    if (!s) {
      s = open().prepare(sql);
      stmts.set(sql, s);
      if (stmts.size > 500) stmts.delete(stmts.keys().next().value!);
    }
    return s;
  };
  const transaction = (body: (db: DatabaseSync) => void): void => {
    const d = open();
    d.exec('BEGIN');
    try {
      body(d);
      d.exec('COMMIT');
    } catch (err) {
      d.exec('ROLLBACK');
      throw sqliteError(err);
    }
  };

  return {
    open(): void {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      db = new DatabaseSync(file);
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 2000; PRAGMA cache_size = -32000;');
      db.exec(SCHEMA);
      insertSeries = db.prepare('INSERT OR IGNORE INTO ts_series (device_id, metric, product) VALUES (?, ?, ?)');
      insertEvent = db.prepare('INSERT OR REPLACE INTO ts_events (device_id, ts, event_id, msg_id, product, payload, flagged, problem) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      deleteEvents = db.prepare('DELETE FROM ts_events WHERE product = ? AND ts < ?');
      // A chunk ends at the 5000th oldest row: SQLite builds usually lack DELETE … LIMIT.
      deleteChunk = db.prepare(
        `DELETE FROM ts_points WHERE series_id = ?1 AND ts < MIN(?2, COALESCE((SELECT ts FROM ts_points WHERE series_id = ?1 AND ts < ?2 ORDER BY ts LIMIT 1 OFFSET ?3), ?2))`,
      );
      if (writes) {
        // the first round everyMs after the store opened, not at the first write
        recent = new RecentPoints(db, writes.fold, writes.published, Date.now());
        recent.foldAll(); // what a crash left
      }
    },
    /** Folding work of the recent-points table, one unit if due (the writer thread calls it between calls); answers whether more is due. */
    foldStep(now: number): boolean {
      return recent?.step(now) ?? false;
    },
    foldDue(now: number): boolean {
      return recent?.due(now) ?? false;
    },
    /**
     * SQLite's checkpoint after a commit that leaves more than `pages` in the WAL (its default: 1,000),
     * and the size the WAL file is cut back to when it is rewound.
     */
    autoCheckpoint(pages: number, walLimitBytes = -1): void {
      open().exec(`PRAGMA wal_autocheckpoint = ${Math.floor(pages)}; PRAGMA journal_size_limit = ${Math.floor(walLimitBytes)}`);
    },
    close(): void {
      // the writer thread folds what waits before it closes (runtime/storage/sqlite-writer.ts), ahead of the last checkpoint
      recent = undefined;
      stmts.clear();
      if (db?.isOpen) db.close();
      db = undefined;
    },
    all(sql: string, params: unknown[] = []): Row[] {
      return prepare(sql).all(...(params as never[])) as Row[];
    },
    insertSeries(rows: { device: string; metric: string; product: string }[]): void {
      transaction(() => {
        for (const r of rows) insertSeries.run(r.device, r.metric, r.product);
      });
    },
    insertPoints(p: PointColumns): void {
      const f = p.numbers;
      const strings = p.strings;
      const into = recent;
      if (!into) throw new Error('points are written by the writer thread');
      transaction(() => {
        for (let i = 0, j = 0; i < p.n; i++, j += 4) into.append(orNull(f[j]!), orNull(f[j + 1]!), orNull(f[j + 2]!), orNull(f[j + 3]!), strings ? strings[i]! : null);
      });
      into.added(p.n);
    },
    deleteChunk(sid: number, before: number, chunk: number): number {
      open();
      // its waiting points first: counted with the rest, and out of the rounds that would bring them back
      recent?.foldSeries([sid]);
      return Number(deleteChunk.run(sid, before, chunk).changes);
    },
    foldSeries(ids: number[]): void {
      open();
      recent?.foldSeries(ids);
    },
    foldDevices(devices: string[]): void {
      open();
      recent?.foldDevices(devices);
    },
    foldAll(): void {
      open();
      recent?.foldAll();
    },
    insertEvents(rows: EventRow[]): void {
      transaction(() => {
        for (const r of rows) insertEvent.run(r.device_id, r.ts, r.event_id, r.msg_id, r.product, r.payload, r.flagged, r.problem);
      });
    },
    deleteEvents(product: string, before: number): number {
      open();
      return Number(deleteEvents.run(product, before).changes);
    },
  };
}

const WRITER_URL = new URL('./sqlite-writer.ts', import.meta.url);

/**
 * The writer thread, started by the first write (an idle FLUX never pays its isolate). Calls run
 * in order; a thread that dies fails its pending calls as the store being away (the writer then
 * buffers on disk and retries, runtime/storage/writer.ts) and the next call starts a new one.
 */
class WriterThread {
  readonly #file: string;
  readonly #onThread: ((worker: Worker) => void) | undefined;
  readonly #checkpoints: CheckpointOptions;
  readonly #fold: FoldOptions;
  /** the recent points waiting to be folded, as the writer thread last published it */
  readonly #waiting = new Int32Array(new SharedArrayBuffer(4));
  #worker: Worker | undefined;
  #next = 1;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();

  constructor(file: string, onThread: ((worker: Worker) => void) | undefined, checkpoints: CheckpointOptions, fold: FoldOptions) {
    this.#file = file;
    this.#onThread = onThread;
    this.#checkpoints = checkpoints;
    this.#fold = fold;
  }

  /** Points were written that reads do not see until they are folded in (a thread not started yet: as the file was left). */
  waiting(): boolean {
    return Atomics.load(this.#waiting, 0) > 0;
  }

  call(op: WriteOp, args: unknown[], transfer: ArrayBuffer[] = []): Promise<unknown> {
    return this.#post(this.#worker ?? this.#start(), op, args, transfer);
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    if (!worker) return;
    await this.#post(worker, 'close', []).catch(() => undefined);
    this.#worker = undefined;
    await worker.terminate();
  }

  #post(worker: Worker, op: WriteCall['op'], args: unknown[], transfer: ArrayBuffer[] = []): Promise<unknown> {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, op, args } satisfies WriteCall, transfer);
    });
  }

  #start(): Worker {
    const worker = new Worker(WRITER_URL, { workerData: { file: this.#file, checkpoints: this.#checkpoints, fold: this.#fold, waiting: this.#waiting.buffer }, name: 'flux-sqlite-writer' });
    this.#worker = worker;
    worker.on('message', (r: WriteReply) => {
      const p = this.#pending.get(r.id);
      if (!p) return;
      this.#pending.delete(r.id);
      if (r.ok) p.resolve(r.value);
      else p.reject(r.data ? new DataError(r.message) : new Error(r.message));
    });
    const stopped = (why: string) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      const err = new Error(`the SQLite writer thread stopped (${why})`);
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    worker.on('error', (err) => stopped(err.message));
    worker.on('exit', (code) => stopped(`exit code ${code}`));
    this.#onThread?.(worker);
    return worker;
  }
}

/** When the checkpointer thread copies the WAL into the database, and when it rewinds it (runtime/storage/sqlite-checkpointer.ts). */
export interface CheckpointOptions {
  /** default 100 ms */
  everyMs: number;
  /** default 8,192 pages (32 MiB of 4 KiB pages); the writer checkpoints itself past twice that */
  restartFrames: number;
  /** how long a rewind waits for readers, default 100 ms */
  busyMs: number;
}

/**
 * Reads on this thread's connection; writes in the writer thread (WAL: readers see each commit),
 * checkpoints in a thread the writer thread starts. `onThread` sees each writer thread as it starts
 * (tests stop one to check what a crash does); `checkpoints` are for tests.
 */
export function sqliteDriver(file: string, opts: { onThread?(worker: Worker): void; checkpoints?: Partial<CheckpointOptions>; fold?: Partial<FoldOptions> } = {}): SqlDriver {
  const reader = sqliteConnection(file);
  const writer = new WriterThread(file, opts.onThread, { everyMs: 100, restartFrames: 8192, busyMs: 100, ...opts.checkpoints }, { ...FOLD_DEFAULTS, ...opts.fold });
  return {
    info: { dialect: 'sqlite', layout: `WAL file ${file}` },
    async open() {
      reader.open();
      // points a crash left unfolded: the writer thread folds them as it starts
      const [left] = reader.all('SELECT EXISTS (SELECT 1 FROM ts_points_recent) AS n');
      if (Number(left?.n)) await writer.call('foldAll', []);
    },
    async visible(of) {
      if (!writer.waiting()) return;
      // a writer thread that failed is restarted by its next write; the read meanwhile sees what is folded
      await writer.call('series' in of ? 'foldSeries' : 'foldDevices', ['series' in of ? of.series : of.devices]).catch(() => undefined);
    },
    async close() {
      await writer.close();
      reader.close();
    },
    async all(sql, params = []) {
      return reader.all(sql, params);
    },
    insertSeries: async (rows) => void (await writer.call('insertSeries', [rows])),
    insertPoints: async (rows) => {
      const columns = pointColumns(rows);
      await writer.call('insertPoints', [columns], [columns.numbers.buffer as ArrayBuffer]);
    },
    deleteChunk: async (sid, before, chunk) => (await writer.call('deleteChunk', [sid, before, chunk])) as number,
    insertEvents: async (rows) => void (await writer.call('insertEvents', [rows])),
    deleteEvents: async (product, before) => (await writer.call('deleteEvents', [product, before])) as number,
    bucket: (width) => `(ts / ${width}) * ${width}`,
  };
}

export function createSqliteStore(file: string): SqlStore {
  return new SqlStore(sqliteDriver(file));
}
