/** The products and devices API over real HTTP, in-process (no Node-RED): CRUD, auth, validation, errors. */
import assert from 'node:assert/strict';
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';

describe('products and devices API', function () {
  let flux: Flux;
  let base: string;

  const call = async (method: string, path: string, body?: unknown, token: string | null = TEST_TOKEN, rawBody?: string) => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined || rawBody !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, { method, headers, body: rawBody ?? (body === undefined ? undefined : JSON.stringify(body)) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };

  before(async function () {
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN });
    flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
    const ports = await flux.start();
    base = `http://127.0.0.1:${ports.http}/api`;
  });

  after(async function () {
    await flux?.stop();
  });

  it('answers 401 without a token and with a wrong one, naming the header to send', async function () {
    const none = await call('GET', '/products', undefined, null);
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'unauthorized');
    assert.match(none.body.error.message, /Authorization: Bearer/);
    const wrong = await call('GET', '/products', undefined, 'not-the-token');
    assert.equal(wrong.status, 401);
  });

  it('serves /api/health: only the status without a token, the components with it', async function () {
    const open = await call('GET', '/health', undefined, null);
    assert.equal(open.status, 200);
    assert.deepEqual(open.body, { status: 'ok' });
    const h = await call('GET', '/health');
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'ok');
    assert.equal(h.body.components.metadata_db.ok, true);
    assert.equal(h.body.components.broker.ok, true);
  });

  it('creates, reads, lists, updates and deletes a product', async function () {
    const created = await call('POST', '/products', { key: 'thermo', name: 'Thermometer', metadata: { properties: [{ id: 'temperature', type: 'float', unit: '°C' }] } });
    assert.equal(created.status, 201);
    const id = created.body.id;
    assert.equal((await call('GET', `/products/${id}`)).body.key, 'thermo');
    assert.equal((await call('GET', '/products/thermo')).body.id, id, 'a product can be read by its key');
    const list = await call('GET', '/products?key=thermo');
    assert.equal(list.body.total, 1);
    const patched = await call('PATCH', `/products/${id}`, { name: 'Thermometer v2' });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.name, 'Thermometer v2');
    assert.deepEqual(patched.body.metadata.properties[0].id, 'temperature', 'a patch keeps what it does not name');
    assert.equal((await call('DELETE', `/products/${id}`)).status, 204);
    assert.equal((await call('GET', `/products/${id}`)).status, 404);
  });

  it('returns a device secret once at creation, never in reads or lists, and rotates it', async function () {
    await call('POST', '/products', { key: 'meter', name: 'Meter' });
    const created = await call('POST', '/devices', { id: 'meter_1', product_id: 'meter' });
    assert.equal(created.status, 201);
    assert.ok(typeof created.body.secret === 'string' && created.body.secret.length >= 16);
    const read = await call('GET', '/devices/meter_1');
    assert.equal(read.body.secret, undefined);
    assert.equal(read.body.secret_hash, undefined);
    const list = await call('GET', '/devices?product_id=meter');
    assert.equal(list.body.items.length, 1);
    assert.equal(JSON.stringify(list.body).includes(created.body.secret), false);
    const rotated = await call('POST', '/devices/meter_1/secret', {});
    assert.equal(rotated.status, 200);
    assert.notEqual(rotated.body.secret, created.body.secret);
    assert.ok(await flux.ctx.registry.devices.authenticate('meter_1', rotated.body.secret));
  });

  it('refuses to delete a product with devices (409) and keeps both', async function () {
    const res = await call('DELETE', '/products/meter');
    assert.equal(res.status, 409);
    assert.match(res.body.error.message, /device/);
    assert.equal((await call('GET', '/products/meter')).status, 200);
    assert.equal((await call('GET', '/devices/meter_1')).status, 200);
  });

  it('answers malformed JSON with 400 invalid_json', async function () {
    const res = await call('POST', '/products', undefined, TEST_TOKEN, '{"key": "x",');
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'invalid_json');
  });

  it('answers wrong types, unknown fields and bad ids with 400 naming the field', async function () {
    const wrongType = await call('POST', '/products', { key: 'p1', name: 42 });
    assert.equal(wrongType.status, 400);
    assert.match(wrongType.body.error.message, /body\.name/);
    const unknown = await call('POST', '/products', { key: 'p1', name: 'x', colour: 'red' });
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.error.message, /colour/);
    const badKey = await call('POST', '/products', { key: 'has space', name: 'x' });
    assert.equal(badKey.status, 400);
    assert.match(badKey.body.error.message, /body\.key/);
    const badDeviceId = await call('POST', '/devices', { id: 'a/b', product_id: 'meter' });
    assert.equal(badDeviceId.status, 400);
    assert.match(badDeviceId.body.error.message, /body\.id/);
    const shortSecret = await call('POST', '/devices', { id: 'meter_2', product_id: 'meter', secret: 'short' });
    assert.equal(shortSecret.status, 400);
    const badPage = await call('GET', '/devices?limit=0');
    assert.equal(badPage.status, 400);
    assert.match(badPage.body.error.message, /query\.limit/);
    const badModel = await call('POST', '/products', { key: 'p2', name: 'x', metadata: { properties: [{ id: 't', type: 'complex' }] } });
    assert.equal(badModel.status, 400);
  });

  it('answers unknown ids with 404 and duplicates with 409', async function () {
    assert.equal((await call('GET', '/devices/nope')).status, 404);
    assert.equal((await call('PATCH', '/devices/nope', { name: 'x' })).status, 404);
    assert.equal((await call('DELETE', '/products/00000000-0000-4000-8000-000000000000')).status, 404);
    assert.equal((await call('POST', '/devices', { id: 'meter_1', product_id: 'meter' })).status, 409);
    assert.equal((await call('POST', '/products', { key: 'meter', name: 'dup' })).status, 409);
    const noProduct = await call('POST', '/devices', { id: 'x_1', product_id: 'no-such' });
    assert.equal(noProduct.status, 400);
    assert.equal(noProduct.body.error.code, 'unknown_reference');
    assert.match(noProduct.body.error.message, /body.product_id: product 'no-such' does not exist/);
    const unknownPath = await call('GET', '/no/such/path');
    assert.equal(unknownPath.status, 404);
    assert.equal(unknownPath.body.error.code, 'not_found');
  });

  it('serves Prometheus metrics and an OpenAPI document that lists every route', async function () {
    const res = await fetch(base + '/metrics', { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    assert.match(await res.text(), /flux_process_resident_memory_bytes/);
    const doc = await call('GET', '/openapi.json', undefined, null);
    assert.equal(doc.body.openapi, '3.1.0');
    for (const r of flux.api.routes.routes) {
      const p = '/api' + r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
      assert.ok(doc.body.paths[p]?.[r.method], `OpenAPI lacks ${r.method.toUpperCase()} ${p}`);
    }
    assert.ok(doc.body.paths['/api/devices'].post.requestBody, 'bodies are documented from their schemas');
  });
});
