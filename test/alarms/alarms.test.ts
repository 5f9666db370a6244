/**
 * The alarm center end to end: alarm rules fed by real MQTT uplinks, /api/alarms, and alarm events
 * reaching a flow through the `flux alarm` node (posted to a real local HTTP server).
 */
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import type { FluxProcess } from '../helpers/flux-process.ts';
import { SEED_HIGH_TEMPERATURE_RULE } from '../rules/seed-scripts.ts';
import { startFluxWithFlow, recorder, waitFor, provision, connectDevice, report } from '../rules/helpers.ts';
import { createTestDatabase } from '../helpers/databases.ts';

// The same suite on each registry dialect: migration 003 and the alarm queries must hold on all three.
const dialects: { name: string; setup(): Promise<{ env: Record<string, string>; drop(): Promise<void> }> }[] = [
  { name: 'SQLite', setup: async () => ({ env: {}, drop: async () => {} }) },
  { name: 'MariaDB', setup: async () => { const db = await createTestDatabase('mysql'); return { env: { FLUX_DB_URL: db.url }, drop: () => db.drop() }; } },
  { name: 'PostgreSQL', setup: async () => { const db = await createTestDatabase('postgres'); return { env: { FLUX_DB_URL: db.url }, drop: () => db.drop() }; } },
];

for (const dialect of dialects) describe(`alarm center on ${dialect.name} (real process, real MQTT)`, function () {
  this.timeout(30_000);
  let db: { env: Record<string, string>; drop(): Promise<void> };
  let f: FluxProcess;
  let events: Awaited<ReturnType<typeof recorder>>;
  let sensor: MqttClient;
  let other: MqttClient;
  let ruleId: string;

  const alarms = async (q = '') => (await f.api('GET', `/api/alarms${q}`)).body;
  const eventTypes = () => events.received.filter((r) => r.path === '/alarm-events').map((r) => `${r.body.state}:${r.body.count}`);

  before(async function () {
    db = await dialect.setup();
    events = await recorder();
    f = await startFluxWithFlow([
      { id: 'tab1', type: 'tab', label: 'alarms test' },
      { id: 'in1', type: 'flux device in', z: 'tab1', kind: 'properties', wires: [['rule1']] },
      { id: 'rule1', type: 'flux rule', z: 'tab1', mode: 'registry', wires: [[], [], []] },
      { id: 'alarm1', type: 'flux alarm', z: 'tab1', levels: 'critical', events: '', wires: [['post1']] },
      { id: 'post1', type: 'http request', z: 'tab1', method: 'POST', ret: 'txt', paytoqs: 'ignore', url: `${events.url}/alarm-events`, wires: [[]] },
    ], db.env);
    const p = await provision(f, 'sensor', ['sensor_01', 'sensor_02']);
    sensor = await connectDevice(f, 'sensor_01', p.secrets.sensor_01!);
    other = await connectDevice(f, 'sensor_02', p.secrets.sensor_02!);
    const r = await f.api('POST', '/api/rules', {
      name: 'high temperature', trigger_script: SEED_HIGH_TEMPERATURE_RULE, action_type: 'alarm',
      action_config: { level: 'critical', message: 'temperature {{values.temperature}} °C on {{device_id}}', auto_clear: true },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    ruleId = r.body.id;
  });

  after(async function () {
    await Promise.all([sensor, other].map((c) => c?.endAsync()));
    const code = await f?.stop();
    await events?.close();
    await db?.drop();
    if (this.currentTest?.state === 'failed' || code !== 0) console.log(f?.output().slice(-4000));
  });

  it('raises one alarm per rule and device and counts repeated triggers instead of duplicating it', async function () {
    await report(sensor, 'sensor', 'sensor_01', { temperature: 46.0 });
    await report(sensor, 'sensor', 'sensor_01', { temperature: 47.5 });
    await report(other, 'sensor', 'sensor_02', { temperature: 50 });
    const list = await waitFor('two alarms, one counted twice', async () => {
      const l = await alarms('?state=active');
      return l.total === 2 && l.items.some((a: { count: number }) => a.count === 2) && l;
    });
    const a = list.items.find((x: { device_id: string }) => x.device_id === 'sensor_01');
    assert.equal(a.rule_id, ruleId);
    assert.equal(a.level, 'critical');
    assert.equal(a.count, 2);
    assert.equal(a.message, 'temperature 47.5 °C on sensor_01');
    assert.ok(a.last_at >= a.first_at);
    assert.deepEqual((await alarms('?device_id=sensor_02')).items.map((x: { count: number }) => x.count), [1]);
    assert.equal((await alarms('?level=info')).total, 0);
  });

  it('clears the alarm automatically when the rule evaluates false again for that device', async function () {
    await report(sensor, 'sensor', 'sensor_01', { temperature: 44.0 });
    const cleared = await waitFor('auto-clear', async () => (await alarms('?device_id=sensor_01&state=cleared')).items[0]);
    assert.ok(cleared.cleared_at);
    assert.equal((await alarms('?device_id=sensor_02&state=active')).total, 1, "the other device's alarm stays active");
  });

  it('moves an alarm from active to acknowledged to cleared through the API, and refuses to acknowledge a cleared one', async function () {
    await report(sensor, 'sensor', 'sensor_01', { temperature: 48 });
    const fresh = await waitFor('a new alarm after the cleared one', async () => (await alarms('?device_id=sensor_01&state=active')).items[0]);
    assert.equal(fresh.count, 1, 'a cleared alarm is not reopened: a new one starts');
    const ack = await f.api('POST', `/api/alarms/${fresh.id}/ack`);
    assert.equal(ack.status, 200);
    assert.equal(ack.body.state, 'acknowledged');
    assert.ok(ack.body.acked_at);
    await report(sensor, 'sensor', 'sensor_01', { temperature: 49 });
    await waitFor('the acknowledged alarm to count the repeat', async () => (await f.api('GET', `/api/alarms/${fresh.id}`)).body.count === 2);
    const clear = await f.api('POST', `/api/alarms/${fresh.id}/clear`);
    assert.equal(clear.body.state, 'cleared');
    const again = await f.api('POST', `/api/alarms/${fresh.id}/ack`);
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'conflict');
    assert.equal((await f.api('POST', '/api/alarms/00000000-0000-4000-8000-000000000000/clear')).status, 404);
    assert.equal((await f.api('GET', '/api/alarms?state=burning')).status, 400);
  });

  it('sends alarm events of the chosen levels into the flow through the flux alarm node', async function () {
    const seen = await waitFor('events in the flow', () => {
      const t = eventTypes();
      return t.includes('cleared:2') && t;
    });
    // sensor_01: raised, repeated, auto-cleared; sensor_02 raised; sensor_01 raised, acknowledged, repeated, cleared.
    for (const want of ['active:1', 'active:2', 'cleared:2', 'acknowledged:1', 'acknowledged:2']) assert.ok(seen.includes(want), `${want} in ${seen.join(', ')}`);
  });
});
