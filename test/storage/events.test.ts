/**
 * Device events end to end on the real `flux` process with its default flow: a device publishes
 * over MQTT (mqtt.js) to /{product}/{device}/event/{eventId}; the event is stored as an event (not
 * telemetry), read through GET /api/devices/{id}/events, pushed to /api/ws clients subscribed to
 * type `event`, checked against the thing model (flagged, still stored) and seen by a rule as
 * msg.event_id / msg.event.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import type { MqttClient } from 'mqtt';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { connectDevice, recorder, waitFor } from '../rules/helpers.ts';

describe('device events: stored as events, listed, pushed live, seen by rules', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let device: MqttClient;
  let hooks: Awaited<ReturnType<typeof recorder>>;
  const live: any[] = [];
  let ws: WebSocket;

  before(async () => {
    hooks = await recorder();
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
    const p = await flux.api('POST', '/api/products', {
      key: 'doors',
      name: 'Doors',
      metadata: { events: [{ id: 'door', name: 'Door moved', fields: [{ id: 'open', type: 'bool', required: true }, { id: 'by', type: 'string' }] }] },
    });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    const d = await flux.api('POST', '/api/devices', { id: 'door-1', product_id: p.body.id });
    assert.equal(d.status, 201, JSON.stringify(d.body));
    const rule = await flux.api('POST', '/api/rules', {
      name: 'door opened',
      trigger_script: 'return msg.event_id == "door" && msg.event.open == true;',
      action_type: 'webhook',
      action_config: { url: `${hooks.url}/door-opened` },
    });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
    ws = new WebSocket(`ws://127.0.0.1:${new URL(flux.url).port}/api/ws?events=event&device=door-1`, { headers: { authorization: `Bearer ${flux.token}` } });
    ws.on('message', (data) => live.push(JSON.parse(String(data))));
    await waitFor('the feed hello', () => live.some((m) => m.type === 'hello'));
    device = await connectDevice(flux, 'door-1', d.body.secret);
  });

  after(async () => {
    ws?.close();
    await device?.endAsync();
    await flux?.stop();
    await hooks?.close();
  });

  it('stores {"open":true} on …/event/door as an event with its message id, not as telemetry', async () => {
    await device.publishAsync('/doors/door-1/event/door', JSON.stringify({ open: true, by: 'alice' }), { qos: 1 });
    const got = await waitFor('the stored event', async () => {
      const r = await flux.api('GET', '/api/devices/door-1/events');
      return r.body.items?.length ? r.body : undefined;
    });
    assert.equal(got.items.length, 1);
    const e = got.items[0];
    assert.equal(e.event_id, 'door');
    assert.deepEqual(e.payload, { open: true, by: 'alice' });
    assert.equal(e.flagged, false);
    assert.equal(e.problem, null);
    assert.equal(got.has_more, false);
    assert.match(e.msg_id, /^[0-9a-f]{16}$/);
    // the message id links to its trace
    const trace = await flux.api('GET', `/api/trace/${e.msg_id}`);
    assert.equal(trace.status, 200, JSON.stringify(trace.body));
    assert.ok(JSON.stringify(trace.body).includes('store'), JSON.stringify(trace.body));
    // and nothing of it became telemetry
    const latest = await flux.api('GET', '/api/devices/door-1/latest');
    assert.deepEqual(latest.body.items, []);
  });

  it('pushes the event to /api/ws clients subscribed to type event', async () => {
    const ev = await waitFor('the live event', () => live.find((m) => m.type === 'event'));
    assert.equal(ev.device_id, 'door-1');
    assert.equal(ev.product_key, 'doors');
    assert.equal(ev.event_id, 'door');
    assert.deepEqual(ev.payload, { open: true, by: 'alice' });
    assert.equal(ev.flagged, false);
  });

  it('a rule reacts to the event through msg.event_id and msg.event', async () => {
    const hit = await waitFor('the rule webhook', () => hooks.received.find((r) => r.path === '/door-opened'));
    assert.equal(hit.body.msg.event_id, 'door');
    assert.deepEqual(hit.body.msg.event, { open: true, by: 'alice' });
    assert.deepEqual(hit.body.msg.values, {});
  });

  it('a payload that does not match the thing model is stored, flagged with the reason', async () => {
    await device.publishAsync('/doors/door-1/event/door', JSON.stringify({ open: 'maybe' }), { qos: 1 });
    await device.publishAsync('/doors/door-1/event/window', JSON.stringify({ open: false, ts: Date.now() + 1 }), { qos: 1 });
    const got = await waitFor('the flagged events', async () => {
      const r = await flux.api('GET', '/api/devices/door-1/events?order=desc');
      return r.body.items?.length === 3 ? r.body : undefined;
    });
    const byEvent = (id: string) => got.items.filter((e: any) => e.event_id === id);
    const bad = byEvent('door').find((e: any) => e.payload.open === 'maybe');
    assert.equal(bad.flagged, true);
    assert.match(bad.problem, /field 'open'/);
    assert.equal(byEvent('window')[0].flagged, true);
    assert.match(byEvent('window')[0].problem, /event 'window' is not declared/);
    // the rule did not fire for a door that is not open
    assert.equal(hooks.received.filter((r) => r.path === '/door-opened').length, 1);
  });

  it('filters by event id, limits with has_more, and answers 404 for an unknown device', async () => {
    const doors = await flux.api('GET', '/api/devices/door-1/events?event=door&limit=1&order=asc');
    assert.equal(doors.status, 200);
    assert.equal(doors.body.items.length, 1);
    assert.deepEqual(doors.body.items[0].payload, { open: true, by: 'alice' });
    assert.equal(doors.body.has_more, true);
    assert.equal((await flux.api('GET', '/api/devices/nobody/events')).status, 404);
    assert.equal((await flux.api('GET', '/api/devices/door-1/events?limit=0')).status, 400);
  });

  it('a non-object payload on an event topic is refused at decode (nothing stored)', async () => {
    await device.publishAsync('/doors/door-1/event/door', '[1,2]', { qos: 1 });
    await device.publishAsync('/doors/door-1/event/marker', '{"seen":1}', { qos: 1 });
    await waitFor('the marker event', async () => (await flux.api('GET', '/api/devices/door-1/events?event=marker')).body.items?.length === 1);
    assert.equal((await flux.api('GET', '/api/devices/door-1/events?event=door')).body.items.length, 2);
  });
});
