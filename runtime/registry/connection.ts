/** The registry's connection: Sequelize on the configured dialect, its checks at start, and the migrations. */
import fs from 'node:fs';
import path from 'node:path';
import { Sequelize } from 'sequelize';
import { Umzug, SequelizeStorage } from 'umzug';
import type { DbUrl } from '../../settings.ts';
import { redact } from '../../settings.ts';
import { ConfigError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { sqliteDialectModule } from './sqlite-adapter.ts';
import { MIGRATIONS } from './migrations/index.ts';

export interface ConnectionOptions {
  /** Sequelize pool size for MySQL/PostgreSQL (SQLite always uses one connection). */
  poolMax?: number;
  /** called with every SQL statement sent (tracing; tests count reads with it) */
  onQuery?: (sql: string) => void;
}

export function openSequelize(db: DbUrl, opts: ConnectionOptions = {}): Sequelize {
  const logging = opts.onQuery ? (sql: string) => opts.onQuery!(sql) : false;
  return db.dialect === 'sqlite'
    ? new Sequelize({
        dialect: 'sqlite',
        storage: db.file,
        dialectModule: sqliteDialectModule,
        logging,
        // one connection: a file DB with a write waiting on another connection's lock blocks the event loop
        pool: { max: 1, min: 0, idle: 60_000 },
      })
    : new Sequelize(db.url, {
        dialect: db.dialect,
        logging,
        pool: { max: opts.poolMax ?? 10, min: 0, idle: 10_000, acquire: 10_000 },
        dialectOptions: db.dialect === 'mysql' ? { connectTimeout: 5000 } : { connectionTimeoutMillis: 5000 },
      });
}

/** Turns a driver error at connect time into the one line the CLI prints. */
function connectError(db: DbUrl, err: unknown): ConfigError {
  const e = err as { message?: string; original?: { code?: string; message?: string }; parent?: { code?: string } };
  const cause = e.original?.code ?? e.parent?.code ?? e.original?.message ?? e.message ?? String(err);
  const where = db.dialect === 'sqlite' ? db.file : redact(db.url);
  return new ConfigError('FLUX_DB_URL', `FLUX_DB_URL: cannot open the ${db.dialect} database ${where}: ${cause}`);
}

/** Checks the database can be opened (a clear one-line error when not), then runs the migrations not yet run. */
export async function connectAndMigrate(sequelize: Sequelize, db: DbUrl, log: Logger, until?: string): Promise<void> {
  if (db.dialect === 'sqlite' && db.file) {
    try {
      fs.mkdirSync(path.dirname(db.file), { recursive: true });
      fs.accessSync(path.dirname(db.file), fs.constants.W_OK);
    } catch (err) {
      throw new ConfigError('FLUX_DB_URL', `FLUX_DB_URL: the folder of ${db.file} is not writable (${(err as NodeJS.ErrnoException).code ?? err})`);
    }
  }
  try {
    await sequelize.authenticate();
  } catch (err) {
    throw connectError(db, err);
  }
  const last = until === undefined ? MIGRATIONS.length : MIGRATIONS.findIndex((m) => m.name === until) + 1;
  if (last === 0) throw new Error(`no migration named '${until}'`);
  const umzug = new Umzug({
    migrations: MIGRATIONS.slice(0, last).map((m) => ({ name: m.name, up: () => m.up(sequelize.getQueryInterface()), down: () => m.down(sequelize.getQueryInterface()) })),
    context: sequelize.getQueryInterface(),
    storage: new SequelizeStorage({ sequelize, tableName: 'flux_migrations' }),
    logger: undefined,
  });
  const done = await umzug.up();
  if (done.length) log.info({ migrations: done.map((m) => m.name), dialect: db.dialect }, 'registry migrated');
}

/** The names of the migrations this database has run, in the order they ran. */
export async function appliedMigrations(sequelize: Sequelize): Promise<string[]> {
  const storage = new SequelizeStorage({ sequelize, tableName: 'flux_migrations' });
  return storage.executed();
}
