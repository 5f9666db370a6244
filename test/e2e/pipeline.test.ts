/**
 * The whole pipeline as a new user meets it: the default flow installed on first start,
 * mosquitto_pub of the seed's Modbus frame → decode (modbus.wasm) → registry rules → SQLite store,
 * then stored telemetry, a triggered alarm, the live feed and the trace of that one message.
 * Also: flow export from one instance and import into a fresh one reproduces the behaviour.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import WebSocket from 'ws';
import { startFlux, tempDir, ROOT, type FluxProcess } from '../helpers/flux-process.ts';
import { SEED_HIGH_TEMPERATURE_RULE } from '../rules/seed-scripts.ts';
import { until } from '../helpers/wait.ts';

const FRAME = Buffer.from('01030201c50000', 'hex');
// The seed's high-temperature rule, verbatim (Rhai syntax: `if temp > 45.0 { … }`).
const HIGH_TEMP_RULE = SEED_HIGH_TEMPERATURE_RULE;

function mosquittoPub(port: number, user: string, password: string, topic: string, bytes: Buffer): void {
  const file = path.join(tempDir('flux-frame-'), 'frame.bin');
  fs.writeFileSync(file, bytes);
  const r = spawnSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', user, '-P', password, '-i', `${user}/pub`, '-q', '1', '-t', topic, '-f', file], { encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, `mosquitto_pub failed: ${r.stderr}`);
}

async function provision(flux: FluxProcess): Promise<string> {
  const product = await flux.api('POST', '/api/products', { key: 'modbus', name: 'Modbus sensor', protocol_plugin_id: 'modbus', metadata: { properties: [{ id: 'temperature', type: 'float', unit: '°C' }] } });
  assert.equal(product.status, 201, JSON.stringify(product.body));
  const device = await flux.api('POST', '/api/devices', { id: 'sensor_1', product_id: 'modbus' });
  assert.equal(device.status, 201);
  return device.body.secret as string;
}

async function latestTemperature(flux: FluxProcess): Promise<number | undefined> {
  const r = await flux.api('GET', '/api/devices/sensor_1/latest');
  if (r.status !== 200) return undefined;
  const body = r.body as { values?: Record<string, { value: number }> } | { metric: string; value: number }[];
  if (Array.isArray(body)) return body.find((s) => s.metric === 'temperature')?.value;
  const v = (body as { values?: Record<string, unknown> }).values?.temperature as { value?: number } | number | undefined;
  return typeof v === 'number' ? v : v?.value;
}

describe('the default pipeline, end to end', function () {
  this.timeout(120_000);
  let flux: FluxProcess;
  let secret: string;

  before(async function () {
    flux = await startFlux();
    secret = await provision(flux);
  });

  after(async function () {
    await flux?.stop();
  });

  it('installs the default flow on first start: device in → decode → rules → store, with error paths', async function () {
    const res = await fetch(`${flux.url}/editor/flows`, { headers: { authorization: `Bearer ${flux.token}` } });
    const types = ((await res.json()) as { type: string }[]).map((n) => n.type);
    for (const t of ['flux device in', 'flux decode', 'flux rule', 'flux store', 'catch', 'flux alarm']) assert.ok(types.includes(t), `the default flow has a ${t} node`);
  });

  it('stores the decoded temperature of a mosquitto_pub frame without touching the editor', async function () {
    mosquittoPub(flux.mqtt, 'sensor_1', secret, '/modbus/sensor_1/properties/report', FRAME);
    const t = await until('the stored temperature', () => latestTemperature(flux));
    assert.equal(t, 45.3);
    const series = await flux.api('GET', `/api/devices/sensor_1/telemetry?metric=temperature&from=${Date.now() - 60_000}&to=${Date.now() + 1000}`);
    assert.equal(series.status, 200);
    assert.match(JSON.stringify(series.body), /45\.3/);
  });

  it('raises an alarm through a registry rule, shows it on the live feed, and traces the message stage by stage', async function () {
    const rule = await flux.api('POST', '/api/rules', { name: 'high temperature', enabled: true, trigger_script: HIGH_TEMP_RULE, action_type: 'alarm', action_config: { level: 'critical', message: 'too hot' } });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));

    const ws = new WebSocket(`ws://127.0.0.1:${flux.http}/api/ws?device=sensor_1`, { headers: { authorization: `Bearer ${flux.token}` } });
    const events: any[] = [];
    ws.on('message', (d) => events.push(JSON.parse(String(d))));
    await new Promise((r, j) => (ws.once('open', r), ws.once('error', j)));
    await until('the feed hello', async () => (events.some((e) => e.type === 'hello') ? true : undefined));

    mosquittoPub(flux.mqtt, 'sensor_1', secret, '/modbus/sensor_1/properties/report', FRAME);

    const alarm = await until('an active alarm', async () => {
      const r = await flux.api('GET', '/api/alarms?device_id=sensor_1');
      const items = (r.body?.items ?? r.body) as { device_id: string; state: string; level: string }[];
      return Array.isArray(items) ? items.find((a) => a.device_id === 'sensor_1' && a.state === 'active') : undefined;
    });
    assert.equal(alarm.level, 'critical');

    const telemetry = await until('a telemetry event on the feed', async () => events.find((e) => e.type === 'telemetry'));
    assert.equal(telemetry.values.temperature, 45.3);
    await until('an alarm event on the feed', async () => events.find((e) => e.type === 'alarm'));
    ws.close();

    const trace = await until('a trace with every stage', async () => {
      const r = await flux.api('GET', '/api/devices/sensor_1/trace?last=1');
      const t = r.body.items?.[0];
      const stages = t?.spans.map((s: { stage: string }) => s.stage) ?? [];
      return ['ingress', 'decode', 'rule', 'store'].every((s) => stages.includes(s)) ? t : undefined;
    });
    const decode = trace.spans.find((s: { stage: string }) => s.stage === 'decode');
    assert.equal(decode.detail.plugin, 'modbus');
    const one = await flux.api('GET', `/api/trace/${trace.id}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.device_id, 'sensor_1');
  });

  it('counts finished messages and their latency in /api/metrics', async function () {
    const res = await fetch(`${flux.url}/api/metrics`, { headers: { authorization: `Bearer ${flux.token}` } });
    const text = await res.text();
    const count = Number(/^flux_pipeline_latency_seconds_count(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0);
    assert.ok(count >= 2, `two uplinks finished the flows (got ${count})`);
  });

  it('reproduces the behaviour in a fresh data dir from exported flows', async function () {
    const exported = await (await fetch(`${flux.url}/editor/flows`, { headers: { authorization: `Bearer ${flux.token}` } })).json();
    const fresh = await startFlux({}, { dataDir: tempDir() });
    try {
      // Replace the fresh instance's default flow with the exported one (import through the admin API).
      const imp = await fetch(`${fresh.url}/editor/flows`, {
        method: 'POST',
        headers: { authorization: `Bearer ${fresh.token}`, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
        body: JSON.stringify(exported),
      });
      assert.equal(imp.status, 204);
      const s = await provision(fresh);
      mosquittoPub(fresh.mqtt, 'sensor_1', s, '/modbus/sensor_1/properties/report', FRAME);
      assert.equal(await until('the stored temperature in the fresh instance', () => latestTemperature(fresh)), 45.3);
    } finally {
      await fresh.stop();
    }
  });

  it('keeps a user-edited flow across a restart (the default is installed only once)', async function () {
    const flows = (await (await fetch(`${flux.url}/editor/flows`, { headers: { authorization: `Bearer ${flux.token}` } })).json()) as { id: string; type: string; name?: string }[];
    const edited = flows.map((n) => (n.id === 'flux-store' ? { ...n, name: 'my store' } : n));
    const r = await fetch(`${flux.url}/editor/flows`, {
      method: 'POST',
      headers: { authorization: `Bearer ${flux.token}`, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(edited),
    });
    assert.equal(r.status, 204);
    await flux.stop();
    flux = await startFlux({}, { dataDir: flux.dataDir });
    const after = (await (await fetch(`${flux.url}/editor/flows`, { headers: { authorization: `Bearer ${flux.token}` } })).json()) as { id: string; name?: string }[];
    assert.equal(after.find((n) => n.id === 'flux-store')?.name, 'my store');
    assert.ok(fs.existsSync(path.join(ROOT, 'flows', 'default.json')));
  });
});
