/** SQLite backend (default): node:sqlite in its own file, WAL, prepared statements, one transaction per batch. */
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { SqlStore, type PointRow, type Row, type SqlDriver } from './sql-store.ts';
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
`;

function sqliteError(err: unknown): Error {
  const code = (err as { errcode?: number }).errcode;
  // Constraint, mismatch and too-big errors are about the data; anything else (busy, I/O, full disk) may pass.
  if (code !== undefined && [19, 20, 18].includes(code & 0xff)) return new DataError((err as Error).message, { cause: err });
  return err as Error;
}

export function sqliteDriver(file: string): SqlDriver {
  let db: DatabaseSync | undefined;
  const stmts = new Map<string, StatementSync>();
  let insertPoint: StatementSync;
  let insertSeries: StatementSync;
  let deleteChunk: StatementSync;
  let insertEvent: StatementSync;
  let deleteEvents: StatementSync;

  const prepare = (sql: string): StatementSync => {
    let s = stmts.get(sql);
    if (!s) {
      s = db!.prepare(sql);
      stmts.set(sql, s);
      if (stmts.size > 500) stmts.delete(stmts.keys().next().value!);
    }
    return s;
  };

  return {
    info: { dialect: 'sqlite', layout: `WAL file ${file}` },
    async open() {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      db = new DatabaseSync(file);
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 2000; PRAGMA cache_size = -32000;');
      db.exec(SCHEMA);
      insertPoint = db.prepare('INSERT OR REPLACE INTO ts_points (series_id, ts, k, num, str) VALUES (?, ?, ?, ?, ?)');
      insertSeries = db.prepare('INSERT OR IGNORE INTO ts_series (device_id, metric, product) VALUES (?, ?, ?)');
      insertEvent = db.prepare('INSERT OR REPLACE INTO ts_events (device_id, ts, event_id, msg_id, product, payload, flagged, problem) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      deleteEvents = db.prepare('DELETE FROM ts_events WHERE product = ? AND ts < ?');
      // A chunk ends at the 5000th oldest row: SQLite builds usually lack DELETE … LIMIT.
      deleteChunk = db.prepare(
        `DELETE FROM ts_points WHERE series_id = ?1 AND ts < MIN(?2, COALESCE((SELECT ts FROM ts_points WHERE series_id = ?1 AND ts < ?2 ORDER BY ts LIMIT 1 OFFSET ?3), ?2))`,
      );
    },
    async close() {
      stmts.clear();
      if (db?.isOpen) db.close();
      db = undefined;
    },
    async all(sql, params = []) {
      if (!db) throw new Error('the SQLite time-series store is closed');
      return prepare(sql).all(...(params as never[])) as Row[];
    },
    async insertSeries(rows) {
      db!.exec('BEGIN');
      try {
        for (const r of rows) insertSeries.run(r.device, r.metric, r.product);
        db!.exec('COMMIT');
      } catch (err) {
        db!.exec('ROLLBACK');
        throw sqliteError(err);
      }
    },
    async insertPoints(rows: PointRow[]) {
      if (!db) throw new Error('the SQLite time-series store is closed');
      db.exec('BEGIN');
      try {
        for (let i = 0; i < rows.length; i++) {
          const r = rows[i]!;
          insertPoint.run(r.sid, r.ts, r.k, r.num, r.str);
        }
        db.exec('COMMIT');
      } catch (err) {
        db.exec('ROLLBACK');
        throw sqliteError(err);
      }
    },
    async deleteChunk(sid, before, chunk) {
      return Number(deleteChunk.run(sid, before, chunk).changes);
    },
    async insertEvents(rows) {
      if (!db) throw new Error('the SQLite time-series store is closed');
      db.exec('BEGIN');
      try {
        for (const r of rows) insertEvent.run(r.device_id, r.ts, r.event_id, r.msg_id, r.product, r.payload, r.flagged, r.problem);
        db.exec('COMMIT');
      } catch (err) {
        db.exec('ROLLBACK');
        throw sqliteError(err);
      }
    },
    async deleteEvents(product, before) {
      return Number(deleteEvents.run(product, before).changes);
    },
    bucket: (width) => `(ts / ${width}) * ${width}`,
  };
}

export function createSqliteStore(file: string): SqlStore {
  return new SqlStore(sqliteDriver(file));
}
