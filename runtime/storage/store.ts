/** Picks the backend for FLUX_TS_URL (ARCHITECTURE §4). */
import type { TsUrl } from '../../settings.ts';
import type { TimeSeriesStore } from './types.ts';
import { createSqliteStore } from './sqlite.ts';
import { createMysqlStore } from './mysql.ts';
import { createPostgresStore } from './postgres.ts';
import { createTdengineStore } from './tdengine.ts';

export function createStore(ts: TsUrl): TimeSeriesStore {
  switch (ts.dialect) {
    case 'sqlite':
      return createSqliteStore(ts.file!);
    case 'mysql':
      return createMysqlStore(ts.url);
    case 'postgres':
      return createPostgresStore(ts.url);
    case 'tdengine':
      return createTdengineStore({ url: ts.url });
  }
}
