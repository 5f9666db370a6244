/**
 * A query's list sizes multiply down its selection: `devices(limit: 1000) { items { product {
 * devices(limit: 1000) … } } }` re-lists a product's thousand devices for each of them (a million
 * objects; two aliases of it held FLUX's thread for 36 s and 750 MB with 1,000 devices). graphql-armor's
 * cost limit does not count list sizes; runtime/graphql/list-bound.ts refuses such an operation
 * before it runs, over HTTP and over the WebSocket alike, whatever the data.
 */
import assert from 'node:assert/strict';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { gql, wsClient } from '../graphql/helpers.ts';

const CROSS = 'query($l: Int = 1000) { devices(limit: $l) { items { id product { devices(limit: $l) { id } } } } }';

describe('GraphQL list fan-out bound (real process)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
    await flux.api('POST', '/api/products', { key: 'fan', name: 'Fan' });
    for (const id of ['fan_1', 'fan_2']) await flux.api('POST', '/api/devices', { id, product_id: 'fan' });
  });
  after(async () => {
    await flux?.stop();
  });

  it('refuses devices × product.devices at a thousand each (bad_request, nothing runs)', async () => {
    const r = await gql(flux.url, flux.token, CROSS);
    assert.equal(r.errors?.[0]?.extensions?.code, 'bad_request', JSON.stringify(r).slice(0, 300));
    assert.match(r.errors![0]!.message, /list items/);
    assert.equal(r.data, undefined);
  });

  it('counts limits given as variables and through fragments', async () => {
    const frag = await gql(flux.url, flux.token, '{ devices(limit: 500) { items { ...P } } } fragment P on Device { product { devices(limit: 500) { id } } }');
    assert.equal(frag.errors?.[0]?.extensions?.code, 'bad_request');
    const small = await gql(flux.url, flux.token, CROSS, { l: 10 });
    assert.equal(small.errors, undefined);
    assert.equal(small.data.devices.items.length, 2);
  });

  it('answers the large queries a client does need: a thousand devices with their alarms, raw telemetry', async () => {
    const r = await gql(flux.url, flux.token, '{ devices(limit: 1000) { items { id alarms(limit: 50) { id } latest { metric } } } telemetry(device_id: "fan_1") { samples { ts } } }');
    assert.equal(r.errors, undefined, JSON.stringify(r.errors));
  });

  it('refuses it over the WebSocket too', async () => {
    const client = wsClient(flux.url, { authorization: `Bearer ${flux.token}` });
    try {
      const got = await new Promise<any>((resolve) => {
        const out: unknown[] = [];
        client.subscribe({ query: CROSS }, { next: (v) => void out.push(v), error: (e) => resolve({ error: e }), complete: () => resolve(out) });
      });
      assert.equal(got[0]?.errors?.[0]?.extensions?.code, 'bad_request', JSON.stringify(got).slice(0, 300));
    } finally {
      await client.dispose();
    }
  });
});
