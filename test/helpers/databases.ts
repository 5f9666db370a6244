/**
 * Real MariaDB and PostgreSQL databases for contract suites: each run creates its own database
 * (never touching others) and drops it afterwards. URLs come from FLUX_TEST_MYSQL_URL /
 * FLUX_TEST_PG_URL (server URLs without a database; `.ci/run` sets them), defaulting to the
 * services on this machine.
 */
import { Sequelize } from 'sequelize';

export const MYSQL_SERVER_URL = process.env.FLUX_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
export const PG_SERVER_URL = process.env.FLUX_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

function withDb(serverUrl: string, db: string): string {
  const u = new URL(serverUrl);
  u.pathname = '/' + db;
  return u.toString();
}

export async function createTestDatabase(kind: 'mysql' | 'postgres', prefix = 'flux_test'): Promise<TestDatabase> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6)}`;
  const admin =
    kind === 'mysql'
      ? new Sequelize(withDb(MYSQL_SERVER_URL, ''), { dialect: 'mysql', logging: false })
      : new Sequelize(withDb(PG_SERVER_URL, 'postgres'), { dialect: 'postgres', logging: false });
  await admin.query(kind === 'mysql' ? `CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4` : `CREATE DATABASE "${name}"`);
  await admin.close();
  return {
    name,
    url: withDb(kind === 'mysql' ? MYSQL_SERVER_URL : PG_SERVER_URL, name),
    async drop() {
      const a =
        kind === 'mysql'
          ? new Sequelize(withDb(MYSQL_SERVER_URL, ''), { dialect: 'mysql', logging: false })
          : new Sequelize(withDb(PG_SERVER_URL, 'postgres'), { dialect: 'postgres', logging: false });
      await a.query(kind === 'mysql' ? `DROP DATABASE IF EXISTS \`${name}\`` : `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await a.close();
    },
  };
}
