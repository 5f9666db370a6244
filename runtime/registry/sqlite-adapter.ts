/**
 * node:sqlite behind the small slice of the `sqlite3` callback API that Sequelize's sqlite dialect
 * calls (Database(file, mode, cb), serialize, all, run, close). Sequelize takes it as
 * `dialectModule`, so no native addon is compiled at install time (docs/storage.md).
 */
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';

type Callback = (this: unknown, err: Error | null, rows?: unknown) => void;

const OPEN_READONLY = 0x1;
const OPEN_READWRITE = 0x2;
const OPEN_CREATE = 0x4;

// Sequelize reads lastID/changes from `this` and checks `this.constructor.name === 'Statement'`.
class Statement {
  lastID: number;
  changes: number;
  constructor(lastID: number, changes: number) {
    this.lastID = lastID;
    this.changes = changes;
  }
}

const SQLITE_CODES: Record<number, string> = { 5: 'SQLITE_BUSY', 6: 'SQLITE_LOCKED', 19: 'SQLITE_CONSTRAINT' };

function toSequelizeError(err: unknown): Error {
  const e = err instanceof Error ? err : new Error(String(err));
  const errcode = (e as { errcode?: number }).errcode;
  if (typeof errcode === 'number') {
    (e as { code?: string }).code = SQLITE_CODES[errcode & 0xff] ?? 'SQLITE_ERROR';
  }
  return e;
}

function bindable(v: unknown): SQLInputValue {
  if (v === undefined || v === null) return null;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v instanceof Date) return v.toISOString();
  return v as SQLInputValue;
}

function params(p: unknown): SQLInputValue[] | Record<string, SQLInputValue> {
  if (Array.isArray(p)) return p.map(bindable);
  if (p && typeof p === 'object') {
    const out: Record<string, SQLInputValue> = {};
    for (const [k, v] of Object.entries(p)) out[k] = bindable(v);
    return out;
  }
  return [];
}

export class Database {
  readonly filename: string;
  readonly db: DatabaseSync;

  constructor(filename: string, mode: number | Callback = OPEN_READWRITE | OPEN_CREATE, cb?: Callback) {
    const callback = typeof mode === 'function' ? mode : cb;
    const flags = typeof mode === 'number' ? mode : OPEN_READWRITE | OPEN_CREATE;
    this.filename = filename;
    let openError: Error | null = null;
    try {
      this.db = new DatabaseSync(filename, { readOnly: (flags & OPEN_READWRITE) === 0, timeout: 5000 });
      if (filename !== ':memory:') {
        // WAL lets readers proceed during a write; one connection (pool max 1) avoids lock waits.
        this.db.exec('PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;');
      }
    } catch (err) {
      openError = toSequelizeError(err);
      this.db = undefined as unknown as DatabaseSync;
    }
    // Sequelize expects the callback after the constructor returns (sqlite3 opens asynchronously).
    if (callback) setImmediate(() => callback.call(this, openError));
  }

  serialize(fn?: () => void): void {
    // node:sqlite is synchronous, so every call is already serialized.
    fn?.();
  }

  all(sql: string, p?: unknown, cb?: Callback): this {
    const callback = (typeof p === 'function' ? p : cb) as Callback | undefined;
    const args = typeof p === 'function' ? [] : params(p);
    let rows: unknown;
    let error: Error | null = null;
    try {
      const stmt = this.db.prepare(sql);
      rows = Array.isArray(args) ? stmt.all(...args) : stmt.all(args);
    } catch (err) {
      error = toSequelizeError(err);
    }
    if (callback) setImmediate(() => callback.call(new Statement(0, 0), error, error ? undefined : rows));
    return this;
  }

  run(sql: string, p?: unknown, cb?: Callback): this {
    const callback = (typeof p === 'function' ? p : cb) as Callback | undefined;
    const args = typeof p === 'function' ? [] : params(p);
    let stmtThis = new Statement(0, 0);
    let error: Error | null = null;
    try {
      const stmt = this.db.prepare(sql);
      const r = Array.isArray(args) ? stmt.run(...args) : stmt.run(args);
      stmtThis = new Statement(Number(r.lastInsertRowid), Number(r.changes));
    } catch (err) {
      error = toSequelizeError(err);
    }
    if (callback) setImmediate(() => callback.call(stmtThis, error));
    return this;
  }

  exec(sql: string, cb?: Callback): this {
    let error: Error | null = null;
    try {
      this.db.exec(sql);
    } catch (err) {
      error = toSequelizeError(err);
    }
    if (cb) setImmediate(() => cb.call(this, error));
    return this;
  }

  close(cb?: Callback): void {
    let error: Error | null = null;
    try {
      if (this.db?.isOpen) this.db.close();
    } catch (err) {
      error = toSequelizeError(err);
    }
    if (cb) setImmediate(() => cb.call(this, error));
  }

  // sqlite3 emits 'trace'/'profile'; Sequelize only registers listeners when logging options ask.
  on(): this {
    return this;
  }
}

/** The module object handed to Sequelize as `dialectModule`. */
export const sqliteDialectModule = { Database, OPEN_READONLY, OPEN_READWRITE, OPEN_CREATE, verbose: () => sqliteDialectModule };
