/**
 * PostgreSQL backend (pg): a TimescaleDB hypertable on `ts` when the extension is available, a plain
 * table clustered by its (series_id, ts) primary key otherwise; batches go in as arrays via unnest.
 */
import { SqlStore, type Row, type SqlDriver } from './sql-store.ts';
import { DataError, type StoreInfo } from './types.ts';

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS ts_series (
     id SERIAL PRIMARY KEY,
     device_id VARCHAR(64) NOT NULL,
     metric VARCHAR(128) NOT NULL,
     product VARCHAR(64) NOT NULL,
     UNIQUE (device_id, metric)
   )`,
  'CREATE INDEX IF NOT EXISTS ts_series_product ON ts_series (product)',
  `CREATE TABLE IF NOT EXISTS ts_points (
     series_id INTEGER NOT NULL,
     ts BIGINT NOT NULL,
     k SMALLINT NOT NULL,
     num DOUBLE PRECISION NULL,
     str TEXT NULL,
     PRIMARY KEY (series_id, ts)
   )`,
  `CREATE TABLE IF NOT EXISTS ts_events (
     device_id VARCHAR(64) NOT NULL,
     ts BIGINT NOT NULL,
     event_id VARCHAR(64) NOT NULL,
     msg_id VARCHAR(64) NOT NULL,
     product VARCHAR(64) NOT NULL,
     payload TEXT NOT NULL,
     flagged SMALLINT NOT NULL,
     problem VARCHAR(1000) NULL,
     PRIMARY KEY (device_id, ts, event_id, msg_id)
   )`,
  'CREATE INDEX IF NOT EXISTS ts_events_product ON ts_events (product, ts)',
];

/** The slice of pg's Pool used here: the project has no @types/pg, and adding a dependency for four lines is not worth it. */
interface QueryResult {
  rows: Row[];
  rowCount: number | null;
}
interface PgPool {
  query(sql: string, params?: unknown[]): Promise<QueryResult>;
  on(event: 'error', listener: (err: Error) => void): void;
  end(): Promise<void>;
}
type PgModule = { Pool: new (config: Record<string, unknown>) => PgPool };
// A non-literal specifier keeps tsc from looking for pg's (absent) type declarations.
const PG: string = 'pg';
const loadPg = async (): Promise<PgModule> => ((await import(PG)) as { default: PgModule }).default;

function pgError(err: unknown): Error {
  const code = (err as { code?: string }).code;
  // Class 22 (data exception) and 23 (integrity) are about the rows; connection and access classes may pass.
  if (typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'))) return new DataError((err as Error).message, { cause: err });
  return err as Error;
}

/** `?` → `$n` (our SQL never has a literal question mark). */
function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export function postgresDriver(url: string): SqlDriver {
  let pool: PgPool | undefined;
  const info: { -readonly [K in keyof StoreInfo]: StoreInfo[K] } = { dialect: 'postgres', layout: 'plain table clustered on (series_id, ts)' };
  const run = async (sql: string, params?: unknown[]): Promise<QueryResult> => {
    if (!pool) throw new Error('the PostgreSQL time-series store is closed');
    try {
      return await pool.query(numbered(sql), params);
    } catch (err) {
      throw pgError(err);
    }
  };
  return {
    info,
    async open() {
      const pg = await loadPg();
      pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5000, idleTimeoutMillis: 10_000 });
      // An idle client whose backend is terminated emits 'error' on the pool; without a listener it would crash the process.
      pool.on('error', () => {});
      for (const s of SCHEMA) await run(s);
      const ext = await run(`SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'`);
      if (ext.rowCount) {
        try {
          await run('CREATE EXTENSION IF NOT EXISTS timescaledb');
          await run(`SELECT create_hypertable('ts_points', 'ts', chunk_time_interval => 86400000::bigint, if_not_exists => true, migrate_data => true)`);
          info.layout = 'TimescaleDB hypertable on ts (1-day chunks)';
        } catch {
          // The extension exists but cannot be used (not preloaded, no privilege): the plain table works.
        }
      }
    },
    async close() {
      const p = pool;
      pool = undefined;
      await p?.end();
    },
    async all(sql, params = []) {
      return (await run(sql, params)).rows;
    },
    async insertSeries(rows) {
      await run('INSERT INTO ts_series (device_id, metric, product) SELECT * FROM unnest(?::varchar[], ?::varchar[], ?::varchar[]) ON CONFLICT DO NOTHING', [
        rows.map((r) => r.device),
        rows.map((r) => r.metric),
        rows.map((r) => r.product),
      ]);
    },
    async insertPoints(rows) {
      const n = rows.length;
      const sid = new Array<number>(n), ts = new Array<number>(n), k = new Array<number>(n), num = new Array<number | null>(n), str = new Array<string | null>(n);
      for (let i = 0; i < n; i++) {
        const r = rows[i]!;
        sid[i] = r.sid;
        ts[i] = r.ts;
        k[i] = r.k;
        num[i] = r.num;
        str[i] = r.str;
      }
      await run(
        `INSERT INTO ts_points (series_id, ts, k, num, str) SELECT * FROM unnest(?::int[], ?::bigint[], ?::smallint[], ?::float8[], ?::text[])
         ON CONFLICT (series_id, ts) DO UPDATE SET k = EXCLUDED.k, num = EXCLUDED.num, str = EXCLUDED.str`,
        [sid, ts, k, num, str],
      );
    },
    async deleteChunk(sid, before, chunk) {
      const r = await run(
        `DELETE FROM ts_points WHERE series_id = ? AND ts < ? AND ts <= COALESCE((SELECT ts FROM ts_points WHERE series_id = ? AND ts < ? ORDER BY ts OFFSET ${chunk - 1} LIMIT 1), ?)`,
        [sid, before, sid, before, before],
      );
      return r.rowCount ?? 0;
    },
    async insertEvents(rows) {
      // One event twice in a batch would make ON CONFLICT touch a row twice: the last one wins.
      const byKey = new Map(rows.map((r) => [`${r.device_id}\0${r.ts}\0${r.event_id}\0${r.msg_id}`, r]));
      const list = [...byKey.values()];
      const col = <K extends keyof (typeof list)[number]>(k: K) => list.map((r) => r[k]);
      await run(
        `INSERT INTO ts_events (device_id, ts, event_id, msg_id, product, payload, flagged, problem)
         SELECT * FROM unnest(?::varchar[], ?::bigint[], ?::varchar[], ?::varchar[], ?::varchar[], ?::text[], ?::smallint[], ?::varchar[])
         ON CONFLICT (device_id, ts, event_id, msg_id) DO UPDATE SET product = EXCLUDED.product, payload = EXCLUDED.payload, flagged = EXCLUDED.flagged, problem = EXCLUDED.problem`,
        [col('device_id'), col('ts'), col('event_id'), col('msg_id'), col('product'), col('payload'), col('flagged'), col('problem')],
      );
    },
    async deleteEvents(product, before) {
      return (await run('DELETE FROM ts_events WHERE product = ? AND ts < ?', [product, before])).rowCount ?? 0;
    },
    bucket: (width) => `(ts / ${width}) * ${width}`,
  };
}

export function createPostgresStore(url: string): SqlStore {
  return new SqlStore(postgresDriver(url));
}
