/**
 * MySQL/MariaDB backend (mysql2): multi-row upserts built client-side (one round trip per 2,000
 * points) into an InnoDB table clustered on (series_id, ts); see docs/storage.md for partitioning.
 */
import mysql from 'mysql2/promise';
import { SqlStore, type Row, type SqlDriver } from './sql-store.ts';
import { DataError } from './types.ts';

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS ts_series (
     id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
     device_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
     metric VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
     product VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
     UNIQUE KEY ts_series_device_metric (device_id, metric),
     KEY ts_series_product (product)
   ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS ts_points (
     series_id INT UNSIGNED NOT NULL,
     ts BIGINT NOT NULL,
     k TINYINT NOT NULL,
     num DOUBLE NULL,
     str TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
     PRIMARY KEY (series_id, ts)
   ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE IF NOT EXISTS ts_events (
     device_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
     ts BIGINT NOT NULL,
     event_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
     msg_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
     product VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
     payload MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
     flagged TINYINT NOT NULL,
     problem VARCHAR(1000) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
     PRIMARY KEY (device_id, ts, event_id, msg_id),
     KEY ts_events_product (product, ts)
   ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
];

// Errors about the data (too long, out of range, bad value): retrying cannot help.
const DATA_ERRNOS = new Set([1048, 1264, 1265, 1292, 1366, 1406, 1416]);

function mysqlError(err: unknown): Error {
  const errno = (err as { errno?: number }).errno;
  if (errno !== undefined && DATA_ERRNOS.has(errno)) return new DataError((err as Error).message, { cause: err });
  return err as Error;
}

const ROWS_PER_STATEMENT = 2000;

export function mysqlDriver(url: string): SqlDriver {
  let pool: mysql.Pool | undefined;
  const escape = (s: string) => mysql.escape(s);
  const run = async (sql: string, params?: unknown[]): Promise<unknown> => {
    if (!pool) throw new Error('the MySQL time-series store is closed');
    try {
      const [rows] = await pool.query(sql, params);
      return rows;
    } catch (err) {
      throw mysqlError(err);
    }
  };
  return {
    info: { dialect: 'mysql', layout: 'InnoDB table clustered on (series_id, ts)' },
    async open() {
      pool = mysql.createPool({ uri: url, connectionLimit: 4, connectTimeout: 5000, supportBigNumbers: true, bigNumberStrings: false, enableKeepAlive: true });
      for (const s of SCHEMA) await run(s);
    },
    async close() {
      const p = pool;
      pool = undefined;
      await p?.end();
    },
    async all(sql, params = []) {
      return (await run(sql, params)) as Row[];
    },
    async insertSeries(rows) {
      const values = rows.map((r) => `(${escape(r.device)},${escape(r.metric)},${escape(r.product)})`).join(',');
      await run(`INSERT IGNORE INTO ts_series (device_id, metric, product) VALUES ${values}`);
    },
    async insertPoints(rows) {
      for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
        let values = '';
        const end = Math.min(rows.length, i + ROWS_PER_STATEMENT);
        for (let j = i; j < end; j++) {
          const r = rows[j]!;
          values += `${j === i ? '' : ','}(${r.sid},${r.ts},${r.k},${r.num === null ? 'NULL' : r.num},${r.str === null ? 'NULL' : escape(r.str)})`;
        }
        await run(`INSERT INTO ts_points (series_id, ts, k, num, str) VALUES ${values} ON DUPLICATE KEY UPDATE k = VALUES(k), num = VALUES(num), str = VALUES(str)`);
      }
    },
    async deleteChunk(sid, before, chunk) {
      const r = (await run(`DELETE FROM ts_points WHERE series_id = ? AND ts < ? ORDER BY ts LIMIT ${chunk}`, [sid, before])) as { affectedRows: number };
      return r.affectedRows;
    },
    async insertEvents(rows) {
      for (let i = 0; i < rows.length; i += 500) {
        const part = rows.slice(i, i + 500);
        const values = part.map((r) => `(${escape(r.device_id)},${r.ts},${escape(r.event_id)},${escape(r.msg_id)},${escape(r.product)},${escape(r.payload)},${r.flagged},${r.problem === null ? 'NULL' : escape(r.problem)})`).join(',');
        await run(`REPLACE INTO ts_events (device_id, ts, event_id, msg_id, product, payload, flagged, problem) VALUES ${values}`);
      }
    },
    async deleteEvents(product, before) {
      const r = (await run('DELETE FROM ts_events WHERE product = ? AND ts < ?', [product, before])) as { affectedRows: number };
      return r.affectedRows;
    },
    bucket: (width) => `(ts DIV ${width}) * ${width}`,
  };
}

export function createMysqlStore(url: string): SqlStore {
  return new SqlStore(mysqlDriver(url));
}
