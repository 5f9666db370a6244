/**
 * Referential checks over real HTTP, in-process: what a body names (a product's plugin and child
 * product, a device's product and gateway, a rule's product and devices, a stream's device) must
 * exist, else 400 `unknown_reference` naming the field and the value; a plugin may be installed in
 * the product's own request.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { ROOT, tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';

describe('referential checks of request bodies', function () {
  this.timeout(30_000);
  let flux: Flux;
  let base: string;

  const call = async (method: string, p: string, body?: unknown) => {
    const headers: Record<string, string> = { authorization: `Bearer ${TEST_TOKEN}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const refused = (r: { status: number; body: any }, message: RegExp) => {
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'unknown_reference');
    assert.match(r.body.error.message, message);
  };

  before(async function () {
    // an empty plugins folder: only plugins installed through the API exist
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN, FLUX_PLUGINS_DIR: tempDir() });
    flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
    const ports = await flux.start();
    base = `http://127.0.0.1:${ports.http}/api`;
    assert.equal((await call('POST', '/products', { key: 'plain', name: 'Plain' })).status, 201);
    assert.equal((await call('POST', '/devices', { id: 'dev_1', product_id: 'plain' })).status, 201);
  });
  after(async () => {
    await flux?.stop();
  });

  it('a product naming a plugin that is not installed is refused, naming it; created, updated and replaced alike', async () => {
    refused(await call('POST', '/products', { key: 'p1', name: 'P1', protocol_plugin_id: 'modbus' }), /body\.protocol_plugin_id: plugin 'modbus' does not exist/);
    refused(await call('PATCH', '/products/plain', { protocol_plugin_id: 'nope' }), /plugin 'nope'/);
    refused(await call('PUT', '/products/plain', { key: 'plain', name: 'Plain', protocol_plugin_id: 'nope' }), /plugin 'nope'/);
    refused(await call('POST', '/products', { key: 'p1', name: 'P1', child_product_id: 'ghost' }), /body\.child_product_id: product 'ghost' does not exist/);
    assert.equal((await call('GET', '/products?key=p1')).body.items.length, 0, 'nothing was stored');
  });

  it('a product may install its plugin in the same request', async () => {
    const wasm = fs.readFileSync(path.join(ROOT, 'plugins', 'dist', 'modbus.wasm')).toString('base64');
    const r = await call('POST', '/products', { key: 'boiler', name: 'Boiler', protocol_plugin_id: 'modbus', protocol_plugin_wasm_base64: wasm });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.protocol_plugin_id, 'modbus');
    assert.equal(r.body.protocol_plugin_wasm_base64, undefined);
    assert.equal((await call('GET', '/plugins/modbus')).status, 200);
    // now installed, a second product names it alone
    assert.equal((await call('POST', '/products', { key: 'boiler2', name: 'Boiler 2', protocol_plugin_id: 'modbus' })).status, 201);
    const orphan = await call('POST', '/products', { key: 'p2', name: 'P2', protocol_plugin_wasm_base64: wasm });
    assert.equal(orphan.status, 400);
    assert.match(orphan.body.error.message, /give protocol_plugin_id/);
  });

  it('a device naming an unknown product or gateway is refused, naming it', async () => {
    refused(await call('POST', '/devices', { id: 'dev_2', product_id: 'ghost' }), /body\.product_id: product 'ghost' does not exist/);
    refused(await call('POST', '/devices', { id: 'dev_2', product_id: 'plain', gateway_id: 'gw_ghost' }), /body\.gateway_id: device 'gw_ghost' does not exist/);
    refused(await call('PATCH', '/devices/dev_1', { gateway_id: 'gw_ghost' }), /device 'gw_ghost'/);
    refused(await call('PUT', '/devices/dev_1/gateway', { gateway_id: 'gw_ghost' }), /device 'gw_ghost'/);
    assert.equal((await call('PUT', '/devices/nobody/gateway', { gateway_id: 'dev_1' })).status, 404, 'the path names the missing device: 404');
  });

  it('a rule naming an unknown product or device is refused, naming it', async () => {
    const rule = { name: 'r', trigger_script: 'return true;', action_type: 'flow' };
    refused(await call('POST', '/rules', { ...rule, product_id: 'ghost' }), /body\.product_id: product 'ghost' does not exist/);
    refused(await call('POST', '/rules', { ...rule, device_id: 'ghost_dev' }), /body\.device_id: device 'ghost_dev' does not exist/);
    refused(await call('POST', '/rules', { ...rule, action_type: 'command', action_config: { device_id: 'ghost_dev', command: 'TurnOn' } }), /body\.action_config\.device_id: device 'ghost_dev' does not exist/);
    const ok = await call('POST', '/rules', { ...rule, product_id: 'plain', device_id: 'dev_1' });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    refused(await call('PATCH', `/rules/${ok.body.id}`, { device_id: 'ghost_dev' }), /device 'ghost_dev'/);
  });

  it('a stream naming an unknown device is refused, naming it', async () => {
    refused(await call('POST', '/streams', { id: 'cam-1', url: 'rtsp://127.0.0.1:8554/x', device_id: 'ghost_dev' }), /body\.device_id: device 'ghost_dev' does not exist/);
    const ok = await call('POST', '/streams', { id: 'cam-1', url: 'rtsp://127.0.0.1:8554/x', device_id: 'dev_1' });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    refused(await call('PATCH', '/streams/cam-1', { device_id: 'ghost_dev' }), /device 'ghost_dev'/);
  });
});
