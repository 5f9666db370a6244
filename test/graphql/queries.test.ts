/**
 * Every GraphQL query through a real HTTP client against the real `flux` process (default flow):
 * telemetry, an event and an alarm arrive over MQTT (mqtt.js) first, so each query answers real data.
 */
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { connectDevice, waitFor } from '../rules/helpers.ts';
import { gql, gqlData } from './helpers.ts';

describe('GraphQL queries (real process, real HTTP client)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let device: MqttClient;
  let productId: string;
  let ruleId: string;
  const T = Date.UTC(2026, 10, 1, 12, 0, 0);
  const q = (query: string, variables?: Record<string, unknown>) => gqlData(flux.url, flux.token, query, variables);

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
    const p = await flux.api('POST', '/api/products', { key: 'thermo', name: 'Thermometer', metadata: { properties: [{ id: 'temp', type: 'float' }], events: [{ id: 'door', fields: [{ id: 'open', type: 'bool' }] }] } });
    productId = p.body.id;
    await flux.api('POST', '/api/products', { key: 'other', name: 'Other' });
    const d = await flux.api('POST', '/api/devices', { id: 't1', product_id: productId, name: 'T one' });
    await flux.api('POST', '/api/devices', { id: 't2', product_id: productId });
    await flux.api('POST', '/api/devices', { id: 'o1', product_id: 'other' });
    const rule = await flux.api('POST', '/api/rules', { name: 'hot', product_id: productId, trigger_script: 'return msg.values.temp > 40;', action_type: 'alarm', action_config: { level: 'critical', message: 'too hot' } });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
    ruleId = rule.body.id;
    device = await connectDevice(flux, 't1', d.body.secret);
    for (let i = 0; i < 5; i++) await device.publishAsync('/thermo/t1/properties/report', JSON.stringify({ ts: T + i * 1000, values: { temp: 20 + i * 10 } }), { qos: 1 });
    await device.publishAsync('/thermo/t1/event/door', JSON.stringify({ open: true, ts: T + 500 }), { qos: 1 });
    await waitFor('stored telemetry and the event', async () => (await flux.api('GET', '/api/devices/t1/latest')).body.values?.temp === 60 && (await flux.api('GET', `/api/devices/t1/events?from=${T - 1000}`)).body.items?.length === 1, 10_000);
    await waitFor('the alarm', async () => (await flux.api('GET', '/api/alarms?device_id=t1')).body.total === 1);
  });
  after(async () => {
    await device?.endAsync();
    await flux?.stop();
  });

  it('products: filters by key, paginates with total and has_more, nests each product\'s devices', async () => {
    const all = await q('{ products(limit: 1) { items { key } page { total limit offset has_more } } }');
    assert.deepEqual(all.products.page, { total: 2, limit: 1, offset: 0, has_more: true });
    const one = await q('{ products(key: "thermo") { items { key devices { id } } page { total has_more } } }');
    assert.deepEqual(one.products.items, [{ key: 'thermo', devices: [{ id: 't1' }, { id: 't2' }] }]);
    assert.equal(one.products.page.has_more, false);
  });

  it('product: by id or key, null when unknown', async () => {
    const r = await q('query($id: ID!) { a: product(id: $id) { key metadata } b: product(id: "thermo") { id } c: product(id: "nope") { id } }', { id: productId });
    assert.equal(r.a.key, 'thermo');
    assert.deepEqual(r.a.metadata.properties, [{ id: 'temp', type: 'float' }]);
    assert.equal(r.b.id, productId);
    assert.equal(r.c, null);
  });

  it('devices: filters by product and status, paginates', async () => {
    const r = await q('{ devices(product_id: "thermo", status: online) { items { id status name } page { total } } offline: devices(product_id: "thermo", status: offline) { items { id } } page: devices(limit: 2, offset: 2) { items { id } page { total has_more } } }');
    assert.deepEqual(r.devices.items, [{ id: 't1', status: 'online', name: 'T one' }]);
    assert.deepEqual(r.offline.items, [{ id: 't2' }]);
    assert.deepEqual(r.page, { items: [{ id: 'o1' }], page: { total: 3, has_more: false } });
    const bad = await gql(flux.url, flux.token, '{ devices(limit: 5000) { items { id } } }');
    assert.equal(bad.errors?.[0]?.extensions?.code, 'bad_request');
  });

  it('device: with its product, latest values and alarms', async () => {
    const r = await q('{ device(id: "t1") { id product { key } latest { metric ts value } alarms { level state message } } none: device(id: "zz") { id } }');
    assert.equal(r.device.product.key, 'thermo');
    assert.deepEqual(r.device.latest, [{ metric: 'temp', ts: T + 4000, value: 60 }]);
    assert.deepEqual(r.device.alarms, [{ level: 'critical', state: 'active', message: 'too hot' }]);
    assert.equal(r.none, null);
  });

  it('telemetry: raw with limit and truncated, aggregated per interval', async () => {
    const raw = await q(`{ telemetry(device_id: "t1", from: "${T}", to: "${T + 10_000}", limit: 3) { samples { ts value } buckets { ts } truncated } }`);
    assert.deepEqual(raw.telemetry.samples.map((s: any) => s.value), [20, 30, 40]);
    assert.equal(raw.telemetry.truncated, true);
    const agg = await q(`{ telemetry(device_id: "t1", from: "${T}", to: "${T + 10_000}", interval: "10s", agg: [avg, max, count]) { interval buckets { metric ts avg max count } truncated } }`);
    assert.deepEqual(agg.telemetry.buckets, [{ metric: 'temp', ts: T, avg: 40, max: 60, count: 5 }]);
    assert.equal(agg.telemetry.truncated, false);
    const bad = await gql(flux.url, flux.token, '{ telemetry(device_id: "t1", interval: "soon") { truncated } }');
    assert.match(bad.errors![0]!.message, /interval/);
  });

  it('events: the device\'s events with their payload and message id', async () => {
    const r = await q(`{ events(device_id: "t1", from: "${T - 1000}", event: "door") { items { event_id ts payload msg_id flagged } has_more } }`);
    assert.equal(r.events.items.length, 1);
    assert.deepEqual(r.events.items[0].payload, { open: true, ts: T + 500 });
    assert.equal(r.events.items[0].ts, T + 500);
    assert.match(r.events.items[0].msg_id, /^[0-9a-f]{16}$/);
  });

  it('rules: with their counters, filtered by product', async () => {
    const r = await q('{ rules(product_id: "thermo") { id name action_type stats } none: rules(product_id: "other") { id } }');
    assert.equal(r.rules.length, 1);
    assert.equal(r.rules[0].name, 'hot');
    assert.ok(r.rules[0].stats.runs >= 5, JSON.stringify(r.rules[0].stats));
    assert.ok(r.rules[0].stats.triggers >= 2, JSON.stringify(r.rules[0].stats));
    assert.deepEqual(r.none, []);
  });

  it('rule: one rule by id', async () => {
    const r = await q('query($id: ID!) { rule(id: $id) { id trigger_script action_config version } }', { id: ruleId });
    assert.equal(r.rule.id, ruleId);
    assert.equal(r.rule.action_config.level, 'critical');
  });

  it('alarms: filtered by device and state, paginated', async () => {
    const r = await q('{ alarms(device_id: "t1", state: active) { items { device_id level count } page { total has_more } } }');
    assert.equal(r.alarms.items.length, 1);
    assert.ok(r.alarms.items[0].count >= 2);
    assert.deepEqual(r.alarms.page, { total: 1, has_more: false });
  });

  it('plugins and plugin: versions and the active one', async () => {
    const r = await q('{ plugins { id active_version versions { version sha256 active source } } plugin(id: "modbus") { id meta } }');
    const modbus = r.plugins.find((p: any) => p.id === 'modbus');
    assert.equal(modbus.active_version, 1);
    assert.equal(modbus.versions[0].active, true);
    assert.equal(modbus.versions[0].source, 'dir');
    assert.equal(r.plugin.meta.protocol, 'modbus-rtu');
  });

  it('trace: the stages of one message', async () => {
    const ev = await q(`{ events(device_id: "t1", from: "${T - 1000}") { items { msg_id } } }`);
    const r = await q('query($id: ID!) { trace(msg_id: $id) { id device_id spans { stage ok } } }', { id: ev.events.items[0].msg_id });
    assert.equal(r.trace.device_id, 't1');
    assert.deepEqual(r.trace.spans.map((s: any) => s.stage).filter((s: string) => ['ingress', 'decode', 'store'].includes(s)), ['ingress', 'decode', 'store']);
  });
});
