/**
 * The rule engine end to end: the real FLUX process, rules saved through /api/rules, device
 * uplinks over real MQTT through a flow (`flux device in` → `flux rule`), a real local webhook
 * server, and device commands through the real downlink to a subscribed MQTT client.
 */
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import type { FluxProcess } from '../helpers/flux-process.ts';
import { SEED_HIGH_TEMPERATURE_RULE, SEED_SCENE } from './seed-scripts.ts';
import { startFluxWithFlow, recorder, waitFor, provision, connectDevice, report } from './helpers.ts';

describe('rule engine (real process, real MQTT, real webhook server)', function () {
  this.timeout(30_000);
  let f: FluxProcess;
  let hooks: Awaited<ReturnType<typeof recorder>>;
  let sensor: MqttClient;
  let room: MqttClient;
  let light: MqttClient;
  let productId: string;
  let otherProductId: string;
  const created: string[] = [];

  const createRule = async (body: Record<string, unknown>) => {
    const r = await f.api('POST', '/api/rules', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    created.push(r.body.id);
    return r.body;
  };
  const hits = (p: string) => hooks.received.filter((r) => r.path === p);

  before(async function () {
    hooks = await recorder((p) => (p.startsWith('/failing') ? 500 : 200));
    f = await startFluxWithFlow([
      { id: 'tab1', type: 'tab', label: 'rules test' },
      { id: 'in1', type: 'flux device in', z: 'tab1', product: '', device: '', kind: 'properties', wires: [['rule1', 'inline1']] },
      { id: 'rule1', type: 'flux rule', z: 'tab1', mode: 'registry', wires: [['post1'], [], ['posterr']] },
      { id: 'inline1', type: 'flux rule', z: 'tab1', mode: 'inline', script: SEED_HIGH_TEMPERATURE_RULE, env: '{}', wires: [['postinline'], [], []] },
      { id: 'post1', type: 'http request', z: 'tab1', method: 'POST', ret: 'txt', paytoqs: 'ignore', url: `${hooks.url}/flow-triggered`, wires: [[]] },
      { id: 'posterr', type: 'http request', z: 'tab1', method: 'POST', ret: 'txt', paytoqs: 'ignore', url: `${hooks.url}/flow-error`, wires: [[]] },
      { id: 'postinline', type: 'http request', z: 'tab1', method: 'POST', ret: 'txt', paytoqs: 'ignore', url: `${hooks.url}/inline-triggered`, wires: [[]] },
    ]);
    const p = await provision(f, 'sensor', ['sensor_01', 'room_sensor', 'light_switch_01']);
    productId = p.productId;
    otherProductId = (await provision(f, 'other', [])).productId;
    sensor = await connectDevice(f, 'sensor_01', p.secrets.sensor_01!);
    room = await connectDevice(f, 'room_sensor', p.secrets.room_sensor!);
    light = await connectDevice(f, 'light_switch_01', p.secrets.light_switch_01!);
    await light.subscribeAsync('/sensor/light_switch_01/command/#', { qos: 1 });
    await light.subscribeAsync('/sensor/light_switch_01/command', { qos: 1 });
  });

  after(async function () {
    await Promise.all([sensor, room, light].map((c) => c?.endAsync()));
    const code = await f?.stop();
    await hooks?.close();
    if (this.currentTest?.state === 'failed' || code !== 0) console.log(f?.output().slice(-4000));
  });

  afterEach(async function () {
    // Each test leaves no rule behind, so the next one sees only its own.
    while (created.length) await f.api('DELETE', `/api/rules/${created.pop()}`);
  });

  it('creates, reads, lists, updates and deletes a rule, bumping its version on each save', async function () {
    const rule = await createRule({ name: 'hot', trigger_script: SEED_HIGH_TEMPERATURE_RULE, action_type: 'flow', product_id: 'sensor' });
    assert.equal(rule.version, 1);
    assert.equal(rule.product_id, productId, 'a product key is stored as the product id');
    assert.equal(rule.stats.runs, 0);
    const list = await f.api('GET', '/api/rules?product_id=sensor');
    assert.deepEqual(list.body.items.map((r: { id: string }) => r.id), [rule.id]);
    const patched = await f.api('PATCH', `/api/rules/${rule.id}`, { name: 'very hot', enabled: false });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.version, 2);
    assert.equal(patched.body.enabled, false);
    assert.equal((await f.api('GET', `/api/rules/${rule.id}`)).body.name, 'very hot');
    assert.equal((await f.api('DELETE', `/api/rules/${rule.id}`)).status, 204);
    created.pop();
    const gone = await f.api('GET', `/api/rules/${rule.id}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.code, 'not_found');
  });

  it('refuses to save a script with a syntax error: 400 with line and column, nothing stored', async function () {
    const r = await f.api('POST', '/api/rules', { name: 'broken', trigger_script: 'let t = msg.values.temperature;\nif t > 45.0 {\n  return tru e;\n}', action_type: 'flow' });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'script_syntax');
    assert.match(r.body.error.message, /line 3, column \d+/);
    assert.equal((await f.api('GET', '/api/rules')).body.items.length, 0);
  });

  it('refuses an action_config that does not fit its action type', async function () {
    const r = await f.api('POST', '/api/rules', { name: 'hook', trigger_script: 'return true', action_type: 'webhook', action_config: { url: 'ftp://x' } });
    assert.equal(r.status, 400);
    assert.match(r.body.error.message, /action_config\.url/);
    const c = await f.api('POST', '/api/rules', { name: 'cmd', trigger_script: 'return true', action_type: 'command', action_config: {} });
    assert.equal(c.status, 400);
    assert.match(c.body.error.message, /action_config\.command/);
  });

  it("test-runs the seed's high-temperature rule on samples: 46.0 °C triggers, 44.0 does not, and nothing is done", async function () {
    const rule = await createRule({ name: 'hot', trigger_script: SEED_HIGH_TEMPERATURE_RULE, action_type: 'webhook', action_config: { url: `${hooks.url}/must-not-fire` } });
    const hot = await f.api('POST', `/api/rules/${rule.id}/test`, { msg: { device_id: 'sensor_01', values: { temperature: 46.0 } } });
    assert.equal(hot.status, 200);
    assert.equal(hot.body.result, true);
    assert.equal(hot.body.triggered, true);
    assert.deepEqual(hot.body.logs, [{ level: 'print', message: 'Warning: High temperature detected!' }]);
    assert.equal(typeof hot.body.micros, 'number');
    assert.equal(hot.body.action.type, 'webhook');
    const cool = await f.api('POST', `/api/rules/${rule.id}/test`, { msg: { device_id: 'sensor_01', values: { temperature: 44.0 } } });
    assert.equal(cool.body.result, false);
    assert.deepEqual(cool.body.logs, []);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(hits('/must-not-fire').length, 0, 'a test run does not call the webhook');
    assert.equal((await f.api('GET', `/api/rules/${rule.id}`)).body.stats.runs, 0, 'a test run is not counted');
  });

  it("test-runs the seed's scene: lists the TurnOn command and the log without sending anything", async function () {
    const rule = await createRule({ name: 'scene', trigger_script: SEED_SCENE, action_type: 'flow' });
    const seen: string[] = [];
    const onMsg = (t: string) => seen.push(t);
    light.on('message', onMsg);
    const r = await f.api('POST', `/api/rules/${rule.id}/test`, { msg: { device_id: 'room_sensor', values: { lux: 30, motion: 1 } } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.commands, [{ device_id: 'light_switch_01', command: 'TurnOn', params: { brightness: 100 } }]);
    assert.deepEqual(r.body.logs, [{ level: 'info', message: 'Opened light due to dark environment.' }]);
    await new Promise((res) => setTimeout(res, 300));
    light.off('message', onMsg);
    assert.deepEqual(seen, [], 'the light got no command from a test run');
  });

  it('answers a failing test run with 200 and the error beside the logs printed before it', async function () {
    const rule = await createRule({ name: 'fails', trigger_script: 'print("before");\nreturn msg.values.missing.deeper;', action_type: 'flow' });
    const r = await f.api('POST', `/api/rules/${rule.id}/test`, { msg: { device_id: 'sensor_01', values: {} } });
    assert.equal(r.status, 200);
    assert.equal(r.body.error.code, 'script_error');
    assert.match(r.body.error.message, /TypeError.*line 2/);
    assert.deepEqual(r.body.logs, [{ level: 'print', message: 'before' }]);
    const loop = await f.api('POST', '/api/rules/test', { trigger_script: 'while (true) {}', msg: { device_id: 'sensor_01', values: {} } });
    assert.equal(loop.status, 200);
    assert.equal(loop.body.error.code, 'script_timeout');
  });

  it('fires the webhook for an MQTT uplink of 46.0 °C, and an edit through the API changes the very next message', async function () {
    const rule = await createRule({
      name: 'threshold', trigger_script: 'return msg.values.temperature > env.limit;', env: { limit: 45 },
      action_type: 'webhook', action_config: { url: `${hooks.url}/threshold`, retries: 0 },
    });
    await report(sensor, 'sensor', 'sensor_01', { temperature: 46.0 });
    const first = await waitFor('the first webhook', () => hits('/threshold')[0]);
    assert.equal(first.body.rule.id, rule.id);
    assert.equal(first.body.device_id, 'sensor_01');
    assert.equal(first.body.msg.values.temperature, 46);
    assert.equal(first.body.result, true);

    const edit = await f.api('PATCH', `/api/rules/${rule.id}`, { env: { limit: 50 } });
    assert.equal(edit.status, 200);
    await report(sensor, 'sensor', 'sensor_01', { temperature: 46.5 }); // the very next message: no longer above the limit
    await report(sensor, 'sensor', 'sensor_01', { temperature: 51.0 });
    await waitFor('the webhook for 51.0', () => hits('/threshold').length >= 2);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(hits('/threshold').map((h) => h.body.msg.values.temperature), [46, 51]);

    // The flow's outputs: the registry node's "triggered" output and the inline seed rule's.
    await waitFor('the flow output', () => hits('/flow-triggered').some((h) => h.body.values?.temperature === 51));
    assert.deepEqual(hits('/inline-triggered').map((h) => h.body.values.temperature), [46, 46.5, 51]);
  });

  it('sends TurnOn {brightness: 100} to light_switch_01 through the real downlink when lux 30 + motion 1 arrives (the seed scene)', async function () {
    await createRule({ name: 'dark room', trigger_script: SEED_SCENE, action_type: 'flow', device_id: 'room_sensor' });
    const got = new Promise<{ topic: string; body: any }>((resolve) => light.once('message', (topic, payload) => resolve({ topic, body: JSON.parse(payload.toString()) })));
    await report(room, 'sensor', 'room_sensor', { lux: 30, motion: 1 });
    const m = await Promise.race([got, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no command within 5 s')), 5000))]);
    assert.equal(m.topic, '/sensor/light_switch_01/command');
    assert.equal(m.body.command, 'TurnOn');
    assert.deepEqual(m.body.params, { brightness: 100 });
  });

  it('rate-limits send_command per rule', async function () {
    const rule = await createRule({
      name: 'chatty', device_id: 'room_sensor', action_type: 'flow', action_config: { commands_per_second: 1 },
      trigger_script: 'for (let i = 0; i < 5; i++) send_command("light_switch_01", "Blink", #{ i: i });',
    });
    await report(room, 'sensor', 'room_sensor', { lux: 1 });
    const stats = await waitFor('the counters', async () => {
      const s = (await f.api('GET', `/api/rules/${rule.id}`)).body.stats;
      return s.runs === 1 && s;
    });
    assert.equal(stats.commands_sent, 2, 'a burst of twice the rate');
    assert.equal(stats.commands_rate_limited, 3);
  });

  it('records a webhook that still fails after its retries, with the attempts, in GET /api/rules/{id}', async function () {
    const rule = await createRule({ name: 'down', trigger_script: 'return true', action_type: 'webhook', action_config: { url: `${hooks.url}/failing`, retries: 2, backoff_ms: 20, timeout_ms: 1000 } });
    await report(sensor, 'sensor', 'sensor_01', { temperature: 1 });
    const stats = await waitFor('the failure to be recorded', async () => {
      const s = (await f.api('GET', `/api/rules/${rule.id}`)).body.stats;
      return s.actions_failed === 1 && s;
    });
    assert.equal(hits('/failing').length, 3, 'one attempt and two retries');
    assert.equal(stats.action_failures[0].attempts, 3);
    assert.match(stats.action_failures[0].error, /HTTP 500/);
    const metrics = (await f.api('GET', '/api/metrics')).body as string;
    assert.match(metrics, new RegExp(`flux_rule_action_failures_total\\{rule_id="${rule.id}",rule="down"[^}]*\\} 1`));
  });

  it('counts runs, triggers, errors and run times per rule, in the rule and in /api/metrics', async function () {
    const rule = await createRule({ name: 'counted', trigger_script: 'if (msg.values.boom) throw new Error("boom"); return msg.values.temperature > 45;', action_type: 'flow', device_id: 'sensor_01' });
    await report(sensor, 'sensor', 'sensor_01', { temperature: 46 });
    await report(sensor, 'sensor', 'sensor_01', { temperature: 40 });
    await report(sensor, 'sensor', 'sensor_01', { temperature: 40, boom: 1 });
    const s = await waitFor('three runs', async () => {
      const st = (await f.api('GET', `/api/rules/${rule.id}`)).body.stats;
      return st.runs === 3 && st;
    });
    assert.equal(s.triggers, 1);
    assert.equal(s.errors, 1);
    assert.match(s.last_error.message, /Error: boom/);
    assert.ok(s.mean_micros > 0 && s.p99_micros >= s.mean_micros, JSON.stringify(s));
    const metrics = (await f.api('GET', '/api/metrics')).body as string;
    assert.match(metrics, new RegExp(`flux_rule_runs_total\\{rule_id="${rule.id}"[^}]*\\} 3`));
    assert.match(metrics, new RegExp(`flux_rule_triggers_total\\{rule_id="${rule.id}"[^}]*\\} 1`));
    assert.match(metrics, new RegExp(`flux_rule_errors_total\\{rule_id="${rule.id}"[^}]*\\} 1`));
    assert.match(metrics, new RegExp(`flux_rule_run_seconds\\{rule_id="${rule.id}",rule="counted",stat="p99"[^}]*\\} [0-9.e-]+`));
    await waitFor('the error output of the node', () => hits('/flow-error').some((h) => h.body.values?.boom === 1));
  });

  it('keeps serving other rules while rules loop forever, allocate 200 MB, recurse without end or call require', async function () {
    const bad = {
      loop: 'while (true) {}',
      memory: 'const s = "x".repeat(200 * 1024 * 1024); return s.length > 0;',
      recursion: 'function f(n) { return f(n + 1) + 1 } return f(0);',
      require: "const fs = require('fs'); return true;",
    };
    const ids: Record<string, string> = {};
    for (const [name, script] of Object.entries(bad)) ids[name] = (await createRule({ name, trigger_script: script, action_type: 'flow', device_id: 'sensor_01' })).id;
    await createRule({ name: 'good', trigger_script: SEED_HIGH_TEMPERATURE_RULE, action_type: 'webhook', action_config: { url: `${hooks.url}/good`, retries: 0 }, device_id: 'sensor_01' });
    for (const t of [46, 47]) await report(sensor, 'sensor', 'sensor_01', { temperature: t });
    await waitFor('the good rule to fire twice', () => hits('/good').length === 2, 8000);
    const codes: Record<string, string> = {};
    for (const [name, id] of Object.entries(ids)) {
      const s = (await f.api('GET', `/api/rules/${id}`)).body.stats;
      assert.equal(s.errors, 2, `${name}: ${JSON.stringify(s)}`);
      codes[name] = s.last_error.code;
    }
    assert.deepEqual(codes, { loop: 'script_timeout', memory: 'script_memory', recursion: 'script_stack', require: 'script_error' });
    assert.equal((await f.api('GET', '/api/health')).body.components.rules.ok, true);
  });

  it('runs a rule only for its product and device', async function () {
    const elsewhere = await createRule({ name: 'other product', trigger_script: 'return true', action_type: 'flow', product_id: otherProductId });
    const otherDevice = await createRule({ name: 'other device', trigger_script: 'return true', action_type: 'flow', device_id: 'room_sensor' });
    const mine = await createRule({ name: 'mine', trigger_script: 'return true', action_type: 'flow', product_id: productId, device_id: 'sensor_01' });
    await report(sensor, 'sensor', 'sensor_01', { temperature: 20 });
    await waitFor('the matching rule to run', async () => (await f.api('GET', `/api/rules/${mine.id}`)).body.stats.runs === 1);
    assert.equal((await f.api('GET', `/api/rules/${elsewhere.id}`)).body.stats.runs, 0);
    assert.equal((await f.api('GET', `/api/rules/${otherDevice.id}`)).body.stats.runs, 0);
  });
});
