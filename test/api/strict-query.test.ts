/**
 * A REST API that refuses what it does not understand, over real HTTP and WebSocket (in-process
 * FLUX): an unknown query parameter is a 400 naming it; /api/rules is paginated like every list;
 * /api/ws closes on an unknown filter key or event type with the reason.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';

describe('strict REST: unknown query parameters and feed filters are refused', function () {
  this.timeout(30_000);
  let flux: Flux;
  let base: string;
  const get = async (p: string) => {
    const res = await fetch(base + p, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    return { status: res.status, body: (await res.json()) as any };
  };

  before(async () => {
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN });
    flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
    base = `http://127.0.0.1:${(await flux.start()).http}`;
    const auth = { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' };
    await fetch(`${base}/api/products`, { method: 'POST', headers: auth, body: JSON.stringify({ key: 'thermo', name: 'T' }) });
    for (const name of ['a', 'b', 'c']) await fetch(`${base}/api/rules`, { method: 'POST', headers: auth, body: JSON.stringify({ name, trigger_script: 'return false;', action_type: 'flow' }) });
  });
  after(async () => {
    await flux?.stop();
  });

  it('answers 400 unknown_parameter naming a query parameter the route does not know', async () => {
    const cases: [string, string][] = [
      ['/api/devices?product=thermo', 'product'],
      ['/api/alarms?device=t1', 'device'],
      ['/api/products/thermo?verbose=1', 'verbose'],
    ];
    for (const [p, name] of cases) {
      const r = await get(p);
      assert.equal(r.status, 400, p);
      assert.equal(r.body.error.code, 'unknown_parameter');
      assert.match(r.body.error.message, new RegExp(`query parameter '${name}' is not known here`));
    }
    assert.match((await get('/api/devices?product=thermo')).body.error.message, /known: .*product_id/);
    assert.equal((await get('/api/devices?product_id=thermo')).status, 200);
  });

  it('paginates /api/rules with total and has_more', async () => {
    const r = await get('/api/rules?limit=1');
    assert.equal(r.status, 200);
    assert.equal(r.body.items.length, 1);
    assert.deepEqual([r.body.total, r.body.limit, r.body.offset, r.body.has_more], [3, 1, 0, true]);
    const last = await get('/api/rules?limit=2&offset=2');
    assert.deepEqual([last.body.items.length, last.body.has_more], [1, false]);
  });

  it('telemetry: order and offset, and says when limit cut it (truncated) with where to continue (next.offset)', async () => {
    const { storage } = flux.modules;
    const product = await flux.ctx.registry.products.get('thermo');
    await flux.ctx.registry.devices.create({ id: 't1', product_id: product.id });
    await storage.store.write([1, 2, 3].map((i) => ({ device: 't1', product: product.id, metric: 'v', ts: 1000 * i, value: i })));
    const cut = await get('/api/devices/t1/telemetry?from=0&to=10000&limit=2');
    assert.deepEqual(cut.body.items.map((s: any) => s.value), [1, 2]);
    assert.equal(cut.body.truncated, true);
    assert.deepEqual(cut.body.next, { offset: 2 });
    const rest = await get(`/api/devices/t1/telemetry?from=0&to=10000&limit=2&offset=${cut.body.next.offset}`);
    assert.deepEqual([rest.body.items.map((s: any) => s.value), rest.body.truncated, rest.body.next], [[3], false, undefined]);
    const newest = await get('/api/devices/t1/telemetry?from=0&to=10000&limit=2&order=desc');
    assert.deepEqual(newest.body.items.map((s: any) => s.value), [3, 2]);
    assert.equal((await get('/api/devices/t1/telemetry?interval=1s&order=desc')).status, 400);
    assert.equal((await get('/api/devices/t1/telemetry?order=sideways')).status, 400);
  });

  it('/api/ws closes with 4400 and the reason on an unknown filter key or event type', async () => {
    const close = (q: string) =>
      new Promise<{ code: number; reason: string }>((resolve) => {
        const ws = new WebSocket(`${base.replace('http', 'ws')}/api/ws?${q}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
        ws.on('close', (code, reason) => resolve({ code, reason: String(reason) }));
      });
    const key = await close('bogus=1');
    assert.equal(key.code, 4400);
    assert.match(key.reason, /unknown filter key 'bogus'/);
    const type = await close('events=bogus');
    assert.equal(type.code, 4400);
    assert.match(type.reason, /unknown event type 'bogus'/);
    const ok = new WebSocket(`${base.replace('http', 'ws')}/api/ws?events=event,telemetry&device=t1`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    const hello = await new Promise<any>((resolve) => ok.once('message', (d) => resolve(JSON.parse(String(d)))));
    assert.deepEqual(hello.filter.events, ['event', 'telemetry']);
    ok.close();
  });
});
