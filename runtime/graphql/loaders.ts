/**
 * Per-request DataLoaders: nested fields (a product's devices, a device's product, latest values and
 * alarms) are gathered over one tick and fetched with one backend call per entity type, however
 * many parents the query lists. test/graphql/dataloader.test.ts counts the calls.
 */
import DataLoader from 'dataloader';
import type { FluxContext } from '../app/context.ts';
import type { Device, Product } from '../registry/index.ts';
import type { Sample, Storage } from '../storage/index.ts';
import type { Alarm, AlarmCenter, AlarmState } from '../alarms/index.ts';

export interface Loaders {
  product: DataLoader<string, Product | null>;
  /** devices of a product, at most `limit` */
  devicesOf(limit: number): DataLoader<string, Device[]>;
  latest: DataLoader<string, Sample[]>;
  alarmsOf(state: AlarmState | undefined, limit: number): DataLoader<string, Alarm[]>;
}

export function createLoaders(ctx: FluxContext, deps: { storage: Storage; alarms: AlarmCenter }): Loaders {
  const byLimit = new Map<string, DataLoader<string, never>>();
  const keyed = <V>(key: string, make: () => DataLoader<string, V>): DataLoader<string, V> => {
    let l = byLimit.get(key) as DataLoader<string, V> | undefined;
    if (!l) byLimit.set(key, (l = make()) as unknown as DataLoader<string, never>);
    return l;
  };
  return {
    product: new DataLoader(async (ids) => {
      const found = new Map((await ctx.registry.products.findMany([...ids])).map((p) => [p.id, p]));
      return ids.map((id) => found.get(id) ?? null);
    }),
    devicesOf: (limit) =>
      keyed(`devices:${limit}`, () =>
        new DataLoader<string, Device[]>(async (ids) => {
          const got = await ctx.registry.devices.byProducts([...ids], limit);
          return ids.map((id) => got.get(id) ?? []);
        }),
      ),
    latest: new DataLoader(async (ids) => {
      const got = await deps.storage.store.latestMany([...ids]);
      return ids.map((id) => got.get(id) ?? []);
    }),
    alarmsOf: (state, limit) =>
      keyed(`alarms:${state ?? ''}:${limit}`, () =>
        new DataLoader<string, Alarm[]>(async (ids) => {
          const got = await deps.alarms.byDevices([...ids], { state, limitEach: limit });
          return ids.map((id) => got.get(id) ?? []);
        }),
      ),
  };
}
