/**
 * DataLoader: a query of many products and devices with their nested fields costs one backend call
 * per entity type, counted on the real backends of an in-process FLUX (registry, store, alarms).
 */
import assert from 'node:assert/strict';
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';
import { gqlData } from './helpers.ts';

describe('GraphQL DataLoader: one backend call per entity type per request', function () {
  this.timeout(30_000);
  let flux: Flux;
  let base: string;
  const calls: Record<string, number> = {};

  /**
   * Replaces obj[name] with a wrapper counting the calls GraphQL makes (its resolvers and loaders
   * call the backends directly, so they are on the stack): FLUX's own background work (e.g. a
   * periodic products.list) may call the same backends while a request runs, more likely on a busy
   * machine, and is not the request's.
   */
  function count<T extends object>(obj: T, name: keyof T & string, label: string): void {
    const original = obj[name] as unknown as (...a: unknown[]) => unknown;
    (obj as Record<string, unknown>)[name] = (...args: unknown[]) => {
      if (new Error().stack?.includes('/runtime/graphql/')) calls[label] = (calls[label] ?? 0) + 1;
      return original.apply(obj, args);
    };
  }

  before(async () => {
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN });
    flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
    base = `http://127.0.0.1:${(await flux.start()).http}`;
    const { registry } = flux.ctx;
    const { storage, alarms } = flux.modules;
    const points = [];
    for (let p = 0; p < 5; p++) {
      const product = await registry.products.create({ key: `p${p}`, name: `P${p}` });
      for (let d = 0; d < 20; d++) {
        const id = `d${p}_${d}`;
        await registry.devices.create({ id, product_id: product.id });
        points.push({ device: id, product: product.id, metric: 'temp', ts: 1000 + d, value: d }, { device: id, product: product.id, metric: 'hum', ts: 1000 + d, value: 50 });
      }
    }
    await storage.store.write(points);
    await alarms.raise({ device_id: 'd0_0', level: 'warning', message: 'w' });
    count(registry.products, 'findMany', 'products.findMany');
    count(registry.products, 'list', 'products.list');
    count(registry.products, 'find', 'products.find');
    count(registry.devices, 'byProducts', 'devices.byProducts');
    count(registry.devices, 'list', 'devices.list');
    count(registry.devices, 'find', 'devices.find');
    count(storage.store, 'latestMany', 'store.latestMany');
    count(storage.store, 'latest', 'store.latest');
    count(alarms, 'byDevices', 'alarms.byDevices');
    count(alarms, 'list', 'alarms.list');
  });
  after(async () => {
    await flux?.stop();
  });
  beforeEach(() => {
    for (const k of Object.keys(calls)) delete calls[k];
  });

  it('100 devices with their latest values, product and alarms: one call each for devices, latest values, products and alarms', async () => {
    const r = await gqlData(base, TEST_TOKEN, '{ devices(limit: 100) { items { id latest { metric value } product { key } alarms { level } } } }');
    assert.equal(r.devices.items.length, 100);
    assert.deepEqual(r.devices.items[0].latest, [{ metric: 'hum', value: 50 }, { metric: 'temp', value: 0 }]);
    assert.deepEqual(r.devices.items[0].alarms, [{ level: 'warning' }]);
    assert.equal(r.devices.items[99].product.key, 'p4');
    assert.deepEqual(calls, { 'devices.list': 1, 'store.latestMany': 1, 'products.findMany': 1, 'alarms.byDevices': 1 });
  });

  it('5 products with their devices and those devices\' latest values: one call per entity type', async () => {
    const r = await gqlData(base, TEST_TOKEN, '{ products { items { key devices(limit: 20) { id latest { value } } } } }');
    assert.equal(r.products.items.length, 5);
    assert.equal(r.products.items[2].devices.length, 20);
    assert.deepEqual(calls, { 'products.list': 1, 'devices.byProducts': 1, 'store.latestMany': 1 });
  });

  it('each request has its own loaders: nothing is cached across requests', async () => {
    await gqlData(base, TEST_TOKEN, '{ devices(limit: 3) { items { product { key } } } }');
    await gqlData(base, TEST_TOKEN, '{ devices(limit: 3) { items { product { key } } } }');
    assert.deepEqual(calls, { 'devices.list': 2, 'products.findMany': 2 });
  });
});
