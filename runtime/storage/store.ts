/**
 * Picks the backend for FLUX_TS_URL (docs/storage.md). Server backends load their driver (mysql2,
 * pg, @tdengine/rest) only when chosen: an edge box on SQLite never pays their memory.
 */
import type { TsUrl } from '../../settings.ts';
import type { TimeSeriesStore, StoreInfo } from './types.ts';
import { createSqliteStore } from './sqlite.ts';

type Loader = () => Promise<TimeSeriesStore>;

/** A store whose backend module is imported by open(); every other call goes to the loaded backend. */
function lazyStore(dialect: StoreInfo['dialect'], load: Loader): TimeSeriesStore {
  let inner: TimeSeriesStore | undefined;
  const get = (): TimeSeriesStore => {
    if (!inner) throw new Error(`the ${dialect} time-series store is not open`);
    return inner;
  };
  const store: TimeSeriesStore = {
    get info() {
      return inner?.info ?? ({ dialect, layout: 'not open' } as StoreInfo);
    },
    async open() {
      inner ??= await load();
      await inner.open();
    },
    close: async () => inner?.close(),
    ping: () => get().ping(),
    write: (points) => get().write(points),
    latest: (device) => get().latest(device),
    latestMany: (devices) => get().latestMany(devices),
    range: (q) => get().range(q),
    aggregate: (q) => get().aggregate(q),
    metrics: (device) => get().metrics(device),
    deleteBefore: (product, before) => get().deleteBefore(product, before),
    writeEvents: (events) => get().writeEvents(events),
    events: (q) => get().events(q),
    deleteEventsBefore: (product, before) => get().deleteEventsBefore(product, before),
    defineProduct: async (product, properties) => get().defineProduct?.(product, properties),
  };
  return store;
}

export function createStore(ts: TsUrl): TimeSeriesStore {
  switch (ts.dialect) {
    case 'sqlite':
      return createSqliteStore(ts.file!);
    case 'mysql':
      return lazyStore('mysql', async () => (await import('./mysql.ts')).createMysqlStore(ts.url));
    case 'postgres':
      return lazyStore('postgres', async () => (await import('./postgres.ts')).createPostgresStore(ts.url));
    case 'tdengine':
      return lazyStore('tdengine', async () => (await import('./tdengine.ts')).createTdengineStore({ url: ts.url }));
  }
}
