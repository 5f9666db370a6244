/**
 * Plugins end to end with the real process: modbus.wasm dropped into the plugins
 * folder, a product using it and a device, a flow deployed through Node-RED's admin API, and
 * `mosquitto_pub` of the frame 01 03 02 01 C5 00 00 → { device_id: "sensor_1", values: { temperature: 45.3 } }.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startFlux, tempDir, ROOT, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';

const flow = [
  { id: 'e2e-tab', type: 'tab', label: 'plugins e2e' },
  { id: 'e2e-in', type: 'flux device in', z: 'e2e-tab', product: 'thermo', device: '', kind: 'properties', wires: [['e2e-decode']] },
  { id: 'e2e-decode', type: 'flux decode', z: 'e2e-tab', plugin: '', wires: [['e2e-keep']] },
  {
    id: 'e2e-keep', type: 'function', z: 'e2e-tab', outputs: 1, wires: [[]],
    func: "const a = flow.get('decoded') || []; a.push({ payload: msg.payload, plugin: msg.plugin, raw: Buffer.from(msg.raw).toString('hex'), device: msg.device }); flow.set('decoded', a); return null;",
  },
  { id: 'e2e-catch', type: 'catch', z: 'e2e-tab', scope: ['e2e-decode'], uncaught: false, wires: [['e2e-errors']] },
  {
    id: 'e2e-errors', type: 'function', z: 'e2e-tab', outputs: 1, wires: [[]],
    func: "const a = flow.get('errors') || []; a.push({ error: msg.error.message, raw: Buffer.from(msg.raw).toString('hex') }); flow.set('errors', a); return null;",
  },
  { id: 'e2e-http', type: 'http in', z: 'e2e-tab', url: '/e2e/decoded', method: 'get', wires: [['e2e-read']] },
  { id: 'e2e-read', type: 'function', z: 'e2e-tab', outputs: 1, wires: [['e2e-resp']], func: "msg.payload = { decoded: flow.get('decoded') || [], errors: flow.get('errors') || [] }; return msg;" },
  { id: 'e2e-resp', type: 'http response', z: 'e2e-tab', statusCode: '', headers: {}, wires: [] },
  { id: 'e2e-cmd', type: 'http in', z: 'e2e-tab', url: '/e2e/encode', method: 'post', wires: [['e2e-encode']] },
  { id: 'e2e-encode', type: 'flux encode', z: 'e2e-tab', plugin: 'modbus-rtu', command: '', wires: [['e2e-hex']] },
  { id: 'e2e-hex', type: 'function', z: 'e2e-tab', outputs: 1, wires: [['e2e-resp']], func: "msg.payload = { hex: msg.payload.toString('hex'), command: msg.command }; return msg;" },
];

describe('plugins end to end', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let pluginsDir: string;
  before(async () => {
    pluginsDir = tempDir('flux-drop-');
    flux = await startFlux({ FLUX_PLUGINS_DIR: pluginsDir });
  });
  after(() => flux?.stop());

  it('decodes a mosquitto_pub of 01 03 02 01 C5 00 00 to sensor_1 at 45.3 in the flow, and sends a bad frame to the catch node', async () => {
    // 1. the user drops modbus.wasm into the plugins folder while FLUX runs
    fs.copyFileSync(path.join(ROOT, 'plugins', 'dist', 'modbus.wasm'), path.join(pluginsDir, 'modbus.wasm'));
    fs.copyFileSync(path.join(ROOT, 'plugins', 'dist', 'modbus-rtu.wasm'), path.join(pluginsDir, 'modbus-rtu.wasm'));
    await until('modbus to load', async () => ((await flux.api('GET', '/api/plugins/modbus')).body?.active_version === 1 ? true : undefined), 10_000);

    // 2. a product that uses it, and the device the frame comes from: unit 1 decodes to sensor_1, and a
    //    message of another device than its sender is refused (docs/broker.md "Who a message belongs to")
    const product = await flux.api('POST', '/api/products', { key: 'thermo', name: 'Thermometer', protocol_plugin_id: 'modbus' });
    assert.equal(product.status, 201, JSON.stringify(product.body));
    const device = await flux.api('POST', '/api/devices', { id: 'sensor_1', product_id: product.body.id });
    assert.equal(device.status, 201, JSON.stringify(device.body));

    // 3. a flow: device in → decode → (function keeps it) ; catch → (function keeps errors) ; GET /e2e/decoded reads both
    const deploy = await fetch(`${flux.url}/editor/flows`, {
      method: 'POST',
      headers: { authorization: `Bearer ${flux.token}`, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(flow),
    });
    assert.equal(deploy.status, 204, await deploy.text());
    await until('the flow to start', async () => ((await fetch(`${flux.url}/flows/e2e/decoded`)).status === 200 ? true : undefined), 10_000);

    // 4. the device publishes the seed's frame with a real third-party client
    const dir = tempDir('flux-frames-');
    fs.writeFileSync(path.join(dir, 'good.bin'), Buffer.from('01030201C50000', 'hex'));
    fs.writeFileSync(path.join(dir, 'short.bin'), Buffer.from('0103', 'hex'));
    const pub = (file: string) =>
      execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(flux.mqtt), '-i', 'sensor_1', '-u', 'sensor_1', '-P', device.body.secret, '-q', '1', '-t', '/thermo/sensor_1/properties/report', '-f', path.join(dir, file)], { timeout: 10_000 });
    pub('good.bin');
    pub('short.bin');

    const seen = await until(
      'the decoded message and the error in the flow',
      async () => {
        const r = (await (await fetch(`${flux.url}/flows/e2e/decoded`)).json()) as { decoded: any[]; errors: any[] };
        return r.decoded.length >= 1 && r.errors.length >= 1 ? r : undefined;
      },
      10_000,
    );
    assert.deepEqual(seen.decoded[0].payload.device_id, 'sensor_1');
    assert.deepEqual(seen.decoded[0].payload.values, { temperature: 45.3 });
    assert.equal(typeof seen.decoded[0].payload.ts, 'number');
    assert.deepEqual(seen.decoded[0].plugin, { id: 'modbus', version: 1 });
    assert.equal(seen.decoded[0].raw, '01030201c50000');
    assert.equal(seen.decoded[0].device.id, 'sensor_1');
    assert.match(seen.errors[0].error, /^(PluginCallError: )?plugin 'modbus'@1: plugin_error: modbus: frame of 2 bytes, need at least 5/);
    assert.equal(seen.errors[0].raw, '0103', 'the catch node gets the frame');
    // the process is fine afterwards
    assert.equal((await flux.api('GET', '/api/health')).body.components.plugins.ok, true);
  });

  it('encodes a command into Modbus RTU bytes with the flux encode node', async () => {
    const r = await fetch(`${flux.url}/flows/e2e/encode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ command: 'read_holding', params: { unit: 1, address: 0, count: 2 } }) });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { hex: '010300000002c40b', command: { command: 'read_holding', params: { unit: 1, address: 0, count: 2 } } });
  });

  it('lists plugins and installs a dropped .wasm through the editor endpoint the node dialogs use', async () => {
    const auth = { authorization: `Bearer ${flux.token}` };
    const list = await fetch(`${flux.url}/editor/flux-plugins`, { headers: auth });
    assert.equal(list.status, 200);
    assert.ok(((await list.json()) as any[]).some((p) => p.id === 'modbus' && p.active_version === 1));
    const bytes = fs.readFileSync(path.join(ROOT, 'plugins', 'dist', 'modbus-as.wasm'));
    const put = await fetch(`${flux.url}/editor/flux-plugins/modbus-as`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/wasm' }, body: bytes });
    assert.equal(put.status, 201, await put.clone().text());
    assert.equal(((await put.json()) as any).version, 1);
    const bad = await fetch(`${flux.url}/editor/flux-plugins/junk`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/wasm' }, body: Buffer.from('junk') });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as any).error.code, 'not_wasm');
    assert.equal((await fetch(`${flux.url}/editor/flux-plugins/x`, { method: 'PUT', headers: { 'content-type': 'application/wasm' }, body: bytes })).status, 401);
  });
});
