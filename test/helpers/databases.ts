/**
 * Real MariaDB and PostgreSQL databases for contract suites: each run creates its own database
 * (never touching others) and drops it afterwards. URLs come from FLUX_TEST_MYSQL_URL /
 * FLUX_TEST_PG_URL (server URLs without a database; `.ci/run` sets them), defaulting to the
 * services on this machine; FLUX_TEST_DB_PREFIX goes in front of the names (to tell one run's from another's).
 *
 * `rawSql` reads and writes any of the three databases with its own driver (node:sqlite, mysql2,
 * pg), not through the registry: tests check what is really stored, and change rows behind the
 * registry's back as another process would. No test touches Sequelize (test/registry/boundary.test.ts).
 */
import { createRequire } from 'node:module';
import { DatabaseSync, type SQLInputValue } from 'node:sqlite';
import mysql from 'mysql2/promise';
import type { DbUrl } from '../../settings.ts';

export const MYSQL_SERVER_URL = process.env.FLUX_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export const PG_SERVER_URL = process.env.FLUX_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A plain SQL connection; `?` placeholders on every dialect. */
export interface RawSql {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

/** The slice of pg's Client used here (the project has no @types/pg). */
interface PgClient {
  connect(): Promise<void>;
  query(sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
}
const pg = createRequire(import.meta.url)('pg') as { Client: new (config: { connectionString: string }) => PgClient };

function withDb(serverUrl: string, db: string): string {
  const u = new URL(serverUrl);
  u.pathname = '/' + db;
  return u.toString();
}

/** Opens `db` (a DbUrl, or a mysql:// or postgres:// URL). */
export async function rawSql(db: DbUrl | string): Promise<RawSql> {
  const d: DbUrl = typeof db === 'string' ? { dialect: db.startsWith('postgres') ? 'postgres' : 'mysql', url: db } : db;
  if (d.dialect === 'sqlite') {
    const conn = new DatabaseSync(d.file!);
    conn.exec('PRAGMA busy_timeout = 5000');
    return {
      query: async <T>(sql: string, params: unknown[] = []) => conn.prepare(sql).all(...(params as SQLInputValue[])) as T[],
      close: async () => conn.close(),
    };
  }
  if (d.dialect === 'mysql') {
    const conn = await mysql.createConnection({ uri: d.url, multipleStatements: false });
    return {
      async query<T>(sql: string, params: unknown[] = []) {
        const [rows] = await conn.query(sql, params);
        return (Array.isArray(rows) ? rows : []) as T[];
      },
      close: () => conn.end(),
    };
  }
  const client = new pg.Client({ connectionString: d.url });
  await client.connect();
  return {
    async query<T>(sql: string, params: unknown[] = []) {
      let i = 0;
      return (await client.query(sql.replace(/\?/g, () => `$${++i}`), params)).rows as T[];
    },
    close: () => client.end(),
  };
}

/** The server itself (no database of ours): for CREATE/DROP DATABASE and server settings. */
export function serverSql(kind: 'mysql' | 'postgres'): Promise<RawSql> {
  return rawSql(kind === 'mysql' ? withDb(MYSQL_SERVER_URL, '') : withDb(PG_SERVER_URL, 'postgres'));
}

export async function createTestDatabase(kind: 'mysql' | 'postgres', prefix = 'flux_test'): Promise<TestDatabase> {
  const runPrefix = process.env.FLUX_TEST_DB_PREFIX ? `${process.env.FLUX_TEST_DB_PREFIX}_` : '';
  const name = `${runPrefix}${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
  const admin = await serverSql(kind);
  await admin.query(kind === 'mysql' ? `CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4` : `CREATE DATABASE "${name}"`);
  await admin.close();
  return {
    name,
    url: withDb(kind === 'mysql' ? MYSQL_SERVER_URL : PG_SERVER_URL, name),
    async drop() {
      const a = await serverSql(kind);
      await a.query(kind === 'mysql' ? `DROP DATABASE IF EXISTS \`${name}\`` : `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await a.close();
    },
  };
}
