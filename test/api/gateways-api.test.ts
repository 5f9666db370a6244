/** The gateway part of the devices API over real HTTP, in-process: mark, attach, detach, list children, refusals. */
import assert from 'node:assert/strict';
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';

describe('devices API: gateways and children', function () {
  let flux: Flux;
  let base: string;

  const call = async (method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { authorization: `Bearer ${TEST_TOKEN}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };

  before(async function () {
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN });
    flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
    const ports = await flux.start();
    base = `http://127.0.0.1:${ports.http}/api`;
    assert.equal((await call('POST', '/products', { key: 'gw', name: 'Gateway' })).status, 201);
    assert.equal((await call('POST', '/products', { key: 'unit', name: 'Unit' })).status, 201);
  });

  after(async function () {
    await flux?.stop();
  });

  it('creates a gateway and a child attached at creation, and lists them', async function () {
    const gw = await call('POST', '/devices', { id: 'gw_1', product_id: 'gw', is_gateway: true });
    assert.equal(gw.status, 201);
    assert.equal(gw.body.is_gateway, true);
    assert.equal(gw.body.gateway_id, null);
    const child = await call('POST', '/devices', { id: 'unit_1', product_id: 'unit', gateway_id: 'gw_1' });
    assert.equal(child.status, 201);
    assert.equal(child.body.gateway_id, 'gw_1');
    assert.deepEqual((await call('GET', '/devices?is_gateway=true')).body.items.map((d: { id: string }) => d.id), ['gw_1']);
    assert.deepEqual((await call('GET', '/devices?gateway_id=gw_1')).body.items.map((d: { id: string }) => d.id), ['unit_1']);
  });

  it('attaches with PUT /devices/{id}/gateway, lists children, detaches with DELETE', async function () {
    assert.equal((await call('POST', '/devices', { id: 'unit_2', product_id: 'unit' })).status, 201);
    const put = await call('PUT', '/devices/unit_2/gateway', { gateway_id: 'gw_1' });
    assert.equal(put.status, 200);
    assert.equal(put.body.gateway_id, 'gw_1');
    const children = await call('GET', '/devices/gw_1/children');
    assert.equal(children.status, 200);
    assert.deepEqual(children.body.items.map((d: { id: string }) => d.id).sort(), ['unit_1', 'unit_2']);
    assert.equal(children.body.total, 2);
    const del = await call('DELETE', '/devices/unit_2/gateway');
    assert.equal(del.status, 200);
    assert.equal(del.body.gateway_id, null);
    assert.equal((await call('GET', '/devices/gw_1/children')).body.total, 1);
    const patched = await call('PATCH', '/devices/unit_2', { gateway_id: 'gw_1' });
    assert.equal(patched.body.gateway_id, 'gw_1', 'PATCH attaches too');
  });

  it('refuses itself (400), a non-gateway (409), a cycle (409), an unknown gateway (400 unknown_reference), naming the id', async function () {
    const self = await call('PATCH', '/devices/gw_1', { gateway_id: 'gw_1' });
    assert.equal(self.status, 400);
    assert.equal(self.body.error.code, 'invalid_gateway');
    assert.match(self.body.error.message, /gw_1/);
    const notGw = await call('PUT', '/devices/unit_2/gateway', { gateway_id: 'unit_1' });
    assert.equal(notGw.status, 409);
    assert.match(notGw.body.error.message, /'unit_1' is not a gateway/);
    assert.equal((await call('POST', '/devices', { id: 'gw_2', product_id: 'gw', is_gateway: true, gateway_id: 'gw_1' })).status, 201);
    const cycle = await call('PUT', '/devices/gw_1/gateway', { gateway_id: 'gw_2' });
    assert.equal(cycle.status, 409);
    assert.match(cycle.body.error.message, /cycle/);
    const missing = await call('PUT', '/devices/unit_2/gateway', { gateway_id: 'no_such_gw' });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.code, 'unknown_reference');
    assert.match(missing.body.error.message, /no_such_gw/);
    const badId = await call('PUT', '/devices/unit_2/gateway', { gateway_id: '../x' });
    assert.equal(badId.status, 400);
    assert.equal((await call('GET', '/devices/nobody/children')).status, 404);
  });

  it('refuses to delete or unmark a gateway that has children', async function () {
    const del = await call('DELETE', '/devices/gw_1');
    assert.equal(del.status, 409);
    assert.match(del.body.error.message, /gateway of 3 device/);
    const unmark = await call('PATCH', '/devices/gw_1', { is_gateway: false });
    assert.equal(unmark.status, 409);
  });

  it('keeps auto_register_children and child_product_id on a product', async function () {
    const p = await call('POST', '/products', { key: 'gw_auto', name: 'Auto', auto_register_children: true, child_product_id: 'unit' });
    assert.equal(p.status, 201);
    assert.equal(p.body.auto_register_children, true);
    assert.match(p.body.child_product_id, /^[0-9a-f-]{36}$/);
    assert.equal((await call('GET', '/products/gw')).body.auto_register_children, false, 'off by default');
  });
});
