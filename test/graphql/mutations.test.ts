/** Every GraphQL mutation through a real HTTP client against the real `flux` process; the command reaches an mqtt.js device. */
import assert from 'node:assert/strict';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { connectDevice, waitFor } from '../rules/helpers.ts';
import { gql, gqlData } from './helpers.ts';

describe('GraphQL mutations (real process, real HTTP client)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let secret: string;
  let ruleId: string;
  const m = (query: string, variables?: Record<string, unknown>) => gqlData(flux.url, flux.token, query, variables);

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
  });
  after(async () => {
    await flux?.stop();
  });

  it('createProduct: stores it; an unknown plugin is refused with unknown_reference', async () => {
    const r = await m('mutation { createProduct(input: { key: "lamp", name: "Lamp", metadata: { properties: [{ id: "on", type: "bool" }] } }) { id key metadata } }');
    assert.equal(r.createProduct.key, 'lamp');
    assert.equal((await flux.api('GET', '/api/products/lamp')).status, 200);
    const bad = await gql(flux.url, flux.token, 'mutation { createProduct(input: { key: "x", name: "X", protocol_plugin_id: "nope" }) { id } }');
    assert.equal(bad.errors?.[0]?.extensions?.code, 'unknown_reference');
    assert.match(bad.errors![0]!.message, /plugin 'nope'/);
  });

  it('updateProduct: changes only the fields given', async () => {
    const r = await m('mutation { updateProduct(id: "lamp", input: { name: "Desk lamp", protocol_plugin_id: "modbus" }) { name protocol_plugin_id metadata } }');
    assert.deepEqual([r.updateProduct.name, r.updateProduct.protocol_plugin_id], ['Desk lamp', 'modbus']);
    assert.deepEqual(r.updateProduct.metadata.properties, [{ id: 'on', type: 'bool' }]);
  });

  it('createDevice: answers the secret once; an unknown product is refused', async () => {
    const r = await m('mutation { createDevice(input: { id: "lamp_1", product_id: "lamp", tags: { room: "hall" } }) { secret device { id product { key } tags } } }');
    assert.equal(r.createDevice.device.product.key, 'lamp');
    assert.deepEqual(r.createDevice.device.tags, { room: 'hall' });
    secret = r.createDevice.secret;
    assert.ok(secret.length >= 16);
    const bad = await gql(flux.url, flux.token, 'mutation { createDevice(input: { id: "x_1", product_id: "ghost" }) { secret } }');
    assert.equal(bad.errors?.[0]?.extensions?.code, 'unknown_reference');
  });

  it('updateDevice: renames and disables; a bad field is a 400 naming it', async () => {
    const r = await m('mutation { updateDevice(id: "lamp_1", input: { name: "Hall lamp" }) { name enabled } }');
    assert.deepEqual(r.updateDevice, { name: 'Hall lamp', enabled: true });
    const bad = await gql(flux.url, flux.token, 'mutation { updateDevice(id: "lamp_1", input: { name: "" }) { name } }');
    assert.equal(bad.errors?.[0]?.extensions?.code, 'bad_request');
    assert.match(bad.errors![0]!.message, /body\.name/);
  });

  it('sendCommand: the plugin encodes it and the device receives the frame over MQTT', async () => {
    const dev = await connectDevice(flux, 'lamp_1', secret);
    try {
      await dev.subscribeAsync('/lamp/lamp_1/command', { qos: 1 });
      const got = new Promise<Buffer>((resolve) => dev.on('message', (_t, payload) => resolve(payload)));
      const r = await m('mutation { sendCommand(device_id: "lamp_1", command: "write_register", params: { unit: 1, address: 1, value: 500 }) { status device_id encoding bytes } }');
      assert.deepEqual(r.sendCommand, { status: 'delivered', device_id: 'lamp_1', encoding: 'plugin', bytes: 8 });
      assert.equal((await got).toString('hex'), '0106000101f4d81d');
    } finally {
      await dev.endAsync();
    }
    await waitFor('offline', async () => (await flux.api('GET', '/api/devices/lamp_1')).body.status === 'offline');
    const offline = await gql(flux.url, flux.token, 'mutation { sendCommand(device_id: "lamp_1", command: "TurnOff") { status } }');
    assert.equal(offline.errors?.[0]?.extensions?.code, 'device_offline');
  });

  it('createRule: a script with a syntax error is refused with line and column', async () => {
    const r = await m('mutation($s: String!) { createRule(input: { name: "hot lamp", trigger_script: $s, action_type: "alarm", action_config: { level: "warning", message: "hot" }, product_id: "lamp" }) { id name stats } }', { s: 'return msg.values.temp > 40;' });
    ruleId = r.createRule.id;
    assert.equal(r.createRule.stats.runs, 0);
    const bad = await gql(flux.url, flux.token, 'mutation { createRule(input: { name: "b", trigger_script: "return (", action_type: "flow" }) { id } }');
    assert.equal(bad.errors?.[0]?.extensions?.code, 'script_syntax');
  });

  it('updateRule: a new version', async () => {
    const r = await m('mutation($id: ID!) { updateRule(id: $id, input: { enabled: false }) { enabled version } }', { id: ruleId });
    assert.deepEqual(r.updateRule, { enabled: false, version: 2 });
  });

  it('testRuleScript: runs a script on a sample message without side effects', async () => {
    const r = await m('mutation { testRuleScript(trigger_script: "print(\\"t=\\" + msg.values.t); return msg.values.t > 1;", msg: { device_id: "lamp_1", values: { t: 5 } }) { result triggered logs } }');
    assert.equal(r.testRuleScript.triggered, true);
    assert.deepEqual(r.testRuleScript.logs.map((l: any) => l.message), ['t=5']);
    const bad = await gql(flux.url, flux.token, 'mutation { testRuleScript(trigger_script: "return true;", msg: { values: {} }) { result } }');
    assert.match(bad.errors![0]!.message, /body\.device_id/);
  });

  it('acknowledgeAlarm and clearAlarm: through the alarm\'s states', async () => {
    const rule = await m('mutation { createRule(input: { name: "always", trigger_script: "return true;", action_type: "alarm", action_config: { level: "info", message: "seen" } }) { id } }');
    // JSON uplinks again: no plugin (null clears the field)
    assert.equal((await m('mutation { updateProduct(id: "lamp", input: { protocol_plugin_id: null }) { protocol_plugin_id } }')).updateProduct.protocol_plugin_id, null);
    const dev = await connectDevice(flux, 'lamp_1', secret);
    await dev.publishAsync('/lamp/lamp_1/properties/report', JSON.stringify({ values: { on: true } }), { qos: 1 });
    await dev.endAsync();
    const alarm = await waitFor('the alarm', async () => (await flux.api('GET', `/api/alarms?rule_id=${rule.createRule.id}`)).body.items?.[0]);
    const acked = await m('mutation($id: ID!) { acknowledgeAlarm(id: $id) { state acked_at } }', { id: alarm.id });
    assert.equal(acked.acknowledgeAlarm.state, 'acknowledged');
    const cleared = await m('mutation($id: ID!) { clearAlarm(id: $id) { state cleared_at } }', { id: alarm.id });
    assert.equal(cleared.clearAlarm.state, 'cleared');
    const missing = await gql(flux.url, flux.token, 'mutation { clearAlarm(id: "00000000-0000-4000-8000-000000000000") { state } }');
    assert.equal(missing.errors?.[0]?.extensions?.code, 'not_found');
  });

  it('deleteRule, deleteDevice, deleteProduct: gone afterwards; a product with devices is refused (409)', async () => {
    const busy = await gql(flux.url, flux.token, 'mutation { deleteProduct(id: "lamp") }');
    assert.equal(busy.errors?.[0]?.extensions?.code, 'conflict');
    const rules = await m('{ rules { id } }');
    for (const r of rules.rules) assert.equal((await m('mutation($id: ID!) { deleteRule(id: $id) }', { id: r.id })).deleteRule, true);
    assert.equal((await m('mutation { deleteDevice(id: "lamp_1") }')).deleteDevice, true);
    assert.equal((await m('mutation { deleteProduct(id: "lamp") }')).deleteProduct, true);
    assert.equal((await flux.api('GET', '/api/products/lamp')).status, 404);
    assert.deepEqual((await m('{ rules { id } }')).rules, []);
  });
});
