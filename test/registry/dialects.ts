/**
 * The three registry databases the repository contract suites run on: SQLite (node:sqlite) in a
 * temporary folder, and a database of their own on the real MariaDB and PostgreSQL servers
 * (test/helpers/databases.ts), dropped afterwards.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import type { DbUrl } from '../../settings.ts';
import { createRegistry, type Registry, type RegistryOptions } from '../../runtime/registry/index.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { FluxError } from '../../runtime/errors/index.ts';
import { createTestDatabase } from '../helpers/databases.ts';
import { tempDir } from '../helpers/flux-process.ts';

export interface Dialect {
  name: string;
  /** an empty database */
  setup(): Promise<{ db: DbUrl; drop(): Promise<void> }>;
}

export const DIALECTS: Dialect[] = [
  { name: 'SQLite (node:sqlite)', setup: async () => ({ db: { dialect: 'sqlite', url: 'sqlite:', file: path.join(tempDir(), 'flux.db') }, drop: async () => {} }) },
  {
    name: 'MariaDB (mysql2)',
    async setup() {
      const t = await createTestDatabase('mysql');
      return { db: { dialect: 'mysql', url: t.url }, drop: () => t.drop() };
    },
  },
  {
    name: 'PostgreSQL (pg)',
    async setup() {
      const t = await createTestDatabase('postgres');
      return { db: { dialect: 'postgres', url: t.url }, drop: () => t.drop() };
    },
  },
];

export const silent = createLogger({ level: 'silent' });

/** A started registry on `db`. */
export async function openRegistry(db: DbUrl, opts: Partial<RegistryOptions> = {}): Promise<Registry> {
  const registry = createRegistry({ db, log: silent, ...opts });
  await registry.start();
  return registry;
}

/** `<status> <code>` of the FluxError the call is refused with. */
export async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FluxError, `expected a FluxError, got ${err}`);
    return `${err.status} ${err.code}`;
  }
  assert.fail('expected the call to be refused');
}

/** true when `iso` is a date within `ms` of `at` (MariaDB's DATETIME keeps whole seconds) */
export const near = (iso: string | null, at: Date, ms = 1000) => iso !== null && Math.abs(new Date(iso).getTime() - at.getTime()) < ms;

/** `rows` sorted by the keys `key` gives, ascending (a copy) */
export function sortedBy<T>(rows: T[], key: (r: T) => (string | number)[]): T[] {
  return [...rows].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
    return 0;
  });
}

/** a row without its created_at and updated_at (a row answered on create has them to the millisecond, MariaDB keeps seconds) */
export function withoutTimes<T extends { created_at: string; updated_at?: string }>(row: T): Omit<T, 'created_at' | 'updated_at'> {
  const { created_at: _c, updated_at: _u, ...rest } = row;
  return rest;
}

/** What a suite of `describeOnDialects` reaches; set before its first test. */
export interface DialectSuite {
  readonly dialect: Dialect;
  /** the suite's own empty database, dropped after it */
  readonly db: DbUrl;
  /** the registry the suite opened on it (started, so migrated), stopped after it */
  readonly registry: Registry;
}

export interface DialectSuiteOptions {
  /** mocha's timeout for each hook and test (30 s unless given) */
  timeout?: number;
  /** how the suite's registry is opened (`openRegistry(db)` unless given); false: none is */
  open?: false | ((db: DbUrl) => Promise<Registry>);
}

/**
 * `describe(`${title} on ${dialect}`)` once per database of DIALECTS, each on an empty database of
 * its own with a registry opened on it: one contract, the same code on SQLite, MariaDB and PostgreSQL.
 */
export function describeOnDialects(title: string, body: (s: DialectSuite) => void, opts: DialectSuiteOptions = {}): void {
  for (const dialect of DIALECTS) {
    describe(`${title} on ${dialect.name}`, function () {
      this.timeout(opts.timeout ?? 30_000);
      let database: { db: DbUrl; drop(): Promise<void> } | undefined;
      let registry: Registry | undefined;
      const suite: DialectSuite = {
        dialect,
        get db() {
          assert.ok(database, 'the database is set up before the first test');
          return database.db;
        },
        get registry() {
          assert.ok(registry, opts.open === false ? 'this suite opens no registry' : 'the registry is opened before the first test');
          return registry;
        },
      };

      before(async function () {
        database = await dialect.setup();
        if (opts.open !== false) registry = await (opts.open ?? openRegistry)(database.db);
      });

      after(async function () {
        await registry?.stop();
        await database?.drop();
      });

      body(suite);
    });
  }
}
