/**
 * Every GraphQL subscription through a real WebSocket client (graphql-ws) on the real `flux`
 * process, fed by a real MQTT device (mqtt.js): filters by device, product and metric, and the
 * connection refused without the token.
 */
import assert from 'node:assert/strict';
import type { Client } from 'graphql-ws';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { connectDevice, waitFor } from '../rules/helpers.ts';
import { collect, wsClient } from './helpers.ts';

describe('GraphQL subscriptions (real process, graphql-ws client, MQTT device)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let client: Client;
  const secrets: Record<string, string> = {};

  /** waits until the server has this many subscriptions open (GET /api/health) */
  const subscribed = (n: number) => waitFor(`${n} subscriptions`, async () => (await flux.api('GET', '/api/health')).body.components?.graphql?.subscriptions >= n);

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
    await flux.api('POST', '/api/products', { key: 'meter', name: 'Meter', metadata: { properties: [{ id: 'temp', type: 'float' }, { id: 'hum', type: 'float' }] } });
    await flux.api('POST', '/api/products', { key: 'other', name: 'Other' });
    for (const [id, product] of [['m1', 'meter'], ['m2', 'meter'], ['o1', 'other']] as const) secrets[id] = (await flux.api('POST', '/api/devices', { id, product_id: product })).body.secret;
    await flux.api('POST', '/api/rules', { name: 'hot', trigger_script: 'return msg.values.temp > 40;', action_type: 'alarm', action_config: { level: 'critical', message: 'hot' } });
    client = wsClient(flux.url, { authorization: `Bearer ${flux.token}` });
  });
  after(async () => {
    await client?.dispose();
    await flux?.stop();
  });

  it('telemetry: filtered by device and metric (values keep only those metrics), and by product', async () => {
    const byDevice = collect(client, 'subscription { telemetry(device_id: "m1", metrics: ["temp"]) { device_id product_key values msg_id } }');
    const byProduct = collect(client, 'subscription($p: String) { telemetry(product_key: $p) { device_id values } }', { p: 'other' });
    await subscribed(2);
    const m1 = await connectDevice(flux, 'm1', secrets.m1!);
    const o1 = await connectDevice(flux, 'o1', secrets.o1!);
    await m1.publishAsync('/meter/m1/properties/report', JSON.stringify({ values: { hum: 50 } }), { qos: 1 });
    await m1.publishAsync('/meter/m1/properties/report', JSON.stringify({ values: { temp: 21.5, hum: 40 } }), { qos: 1 });
    await o1.publishAsync('/other/o1/properties/report', JSON.stringify({ values: { x: 1 } }), { qos: 1 });
    const got = await byDevice.next(1);
    assert.deepEqual(got[0].data.telemetry.values, { temp: 21.5 }, 'hum alone did not match; values keep only temp');
    assert.equal(got[0].data.telemetry.product_key, 'meter');
    assert.match(got[0].data.telemetry.msg_id, /^[0-9a-f]{16}$/);
    assert.deepEqual((await byProduct.next(1))[0].data.telemetry, { device_id: 'o1', values: { x: 1 } });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(byDevice.got.length, 1);
    assert.equal(byProduct.got.length, 1);
    byDevice.stop();
    byProduct.stop();
    await Promise.all([m1.endAsync(), o1.endAsync()]);
  });

  it('status: a device going online and offline', async () => {
    await waitFor('subscriptions closed', async () => (await flux.api('GET', '/api/health')).body.components?.graphql?.subscriptions === 0);
    const s = collect(client, 'subscription { status(device_id: "m2") { device_id status } }');
    await subscribed(1);
    const m2 = await connectDevice(flux, 'm2', secrets.m2!);
    assert.deepEqual((await s.next(1))[0].data.status, { device_id: 'm2', status: 'online' });
    await m2.endAsync();
    assert.deepEqual((await s.next(2))[1].data.status, { device_id: 'm2', status: 'offline' });
    s.stop();
  });

  it('events: a device event, filtered by event id', async () => {
    const s = collect(client, 'subscription { events(device_id: "m1", event: "door") { event_id payload flagged msg_id } }');
    await subscribed(1);
    const m1 = await connectDevice(flux, 'm1', secrets.m1!);
    await m1.publishAsync('/meter/m1/event/button', JSON.stringify({ n: 1 }), { qos: 1 });
    await m1.publishAsync('/meter/m1/event/door', JSON.stringify({ open: true }), { qos: 1 });
    const got = await s.next(1);
    assert.equal(got[0].data.events.event_id, 'door');
    assert.deepEqual(got[0].data.events.payload, { open: true });
    assert.equal(got[0].data.events.flagged, false);
    await m1.endAsync();
    s.stop();
  });

  it('alarms: an alarm a rule raises, filtered by device and level', async () => {
    const s = collect(client, 'subscription { alarms(device_id: "m2", level: critical) { event alarm { device_id level message state } } }');
    await subscribed(1);
    const m2 = await connectDevice(flux, 'm2', secrets.m2!);
    await m2.publishAsync('/meter/m2/properties/report', JSON.stringify({ values: { temp: 45 } }), { qos: 1 });
    const got = await s.next(1);
    assert.deepEqual(got[0].data.alarms, { event: 'raised', alarm: { device_id: 'm2', level: 'critical', message: 'hot', state: 'active' } });
    await m2.endAsync();
    s.stop();
  });

  it('refuses a WebSocket connection without the token (4403) and a plain HTTP request without it (401)', async () => {
    const anonymous = wsClient(flux.url, {});
    const closed = new Promise<number>((resolve) => anonymous.on('closed', (e) => resolve((e as { code: number }).code)));
    const s = collect(anonymous, 'subscription { status { device_id } }');
    assert.equal(await closed, 4403);
    assert.equal(s.got.length, 0);
    await anonymous.dispose();
    const res = await fetch(`${flux.url}/api/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ plugins { id } }"}' });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'unauthorized');
  });
});
