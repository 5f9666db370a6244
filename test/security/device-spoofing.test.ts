/**
 * A device must not write telemetry as another device (docs/broker.md "Who a message belongs to"):
 * the attack as found, through the real FLUX process, MQTT and the default flow. Device sensor_2,
 * with its own secret, publishes the seed's Modbus frame of unit 1 (decoded by plugins/dist/modbus.wasm
 * into `sensor_1`) and a frame of unit 123 (`sensor_123`, no such device) on its own topic.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import mqtt from 'mqtt';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';

const frame = (unit: number, tenths: number) => Buffer.from([unit, 0x03, 0x02, tenths >> 8, tenths & 0xff, 0x00, 0x00]);

/** A catch node on the decode node whose messages an `http in` endpoint answers: the decode node's error output, seen from outside. */
const REFUSALS_FLOW = [
  { id: 'sec-catch', type: 'catch', z: 'flux-pipeline', name: 'decode errors', scope: ['flux-decode'], uncaught: false, wires: [['sec-keep']] },
  {
    id: 'sec-keep', type: 'function', z: 'flux-pipeline', name: 'keep', outputs: 0,
    func: "const l = global.get('refusals') || []; l.push({ message: msg.error && msg.error.message, device_id: msg.payload && msg.payload.device_id, sender: msg.device && msg.device.id }); global.set('refusals', l); return null;",
    wires: [],
  },
  { id: 'sec-http', type: 'http in', z: 'flux-pipeline', url: '/test/refusals', method: 'get', wires: [['sec-read']] },
  { id: 'sec-read', type: 'function', z: 'flux-pipeline', name: 'read', outputs: 1, func: "msg.payload = global.get('refusals') || []; return msg;", wires: [['sec-res']] },
  { id: 'sec-res', type: 'http response', z: 'flux-pipeline', statusCode: '', headers: {}, wires: [] },
];

describe('security: a device cannot report as another device', function () {
  this.timeout(120_000);
  let flux: FluxProcess;
  const secret: Record<string, string> = {};

  const latest = async (id: string): Promise<number | undefined> => {
    const r = await flux.api('GET', `/api/devices/${id}/latest`);
    return r.status === 200 ? (r.body.values?.temperature as number | undefined) : undefined;
  };
  const publish = async (device: string, bytes: Buffer) => {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { clientId: device, username: device, password: secret[device], reconnectPeriod: 0 });
    await c.publishAsync(`/boiler/${device}/properties/report`, bytes, { qos: 1 });
    await c.endAsync();
  };

  before(async function () {
    flux = await startFlux({}, { timeoutMs: 60_000 });
    const p = await flux.api('POST', '/api/products', { key: 'boiler', name: 'Boiler', protocol_plugin_id: 'modbus', metadata: { properties: [{ id: 'temperature', type: 'float' }] } });
    assert.equal(p.status, 201);
    for (const id of ['sensor_1', 'sensor_2']) secret[id] = (await flux.api('POST', '/api/devices', { id, product_id: 'boiler' })).body.secret;
    // the alarm whose counter the attacker pushed up
    const rule = { name: 'too hot', enabled: true, trigger_script: 'return msg.values.temperature > 45;', action_type: 'alarm', action_config: { level: 'critical', message: 'too hot' } };
    // on a loaded machine compiling a rule can hit the script sandbox's time limit (a 500): try again
    let created = 0;
    for (let i = 0; i < 5 && created !== 201; i++) created = (await flux.api('POST', '/api/rules', rule)).status;
    assert.equal(created, 201);
    const current = (await flux.api('GET', '/editor/flows')).body as unknown[];
    const deploy = await flux.api('POST', '/editor/flows', [...current, ...REFUSALS_FLOW], { 'Node-RED-Deployment-Type': 'full' });
    assert.equal(deploy.status, 204);
  });

  after(async function () {
    await flux?.stop();
  });

  it("sensor_2 publishing unit 1's frame changes nothing of sensor_1, and unit 123's frame stores nothing", async function () {
    await publish('sensor_1', frame(1, 200)); // sensor_1's own 20.0 °C
    assert.equal(await until("sensor_1's own reading", () => latest('sensor_1'), 60_000), 20);

    await publish('sensor_2', frame(1, 453)); // "sensor_1" at 45.3 °C, from sensor_2
    await publish('sensor_2', frame(123, 453)); // "sensor_123", a device that does not exist
    // both messages went through decode: refused (trace), or (before the fix) stored as sensor_1
    await until('both frames of sensor_2 decoded', async () => {
      const t = await flux.api('GET', '/api/devices/sensor_2/trace');
      const decoded = (t.body.items ?? []).filter((x: { spans: { stage: string }[] }) => x.spans.some((s) => s.stage === 'decode'));
      return decoded.length >= 2 && (decoded.every((x: { spans: { stage: string }[] }) => x.spans.some((s) => s.stage === 'ownership' || s.stage === 'store')) || undefined);
    }, 60_000);
    await new Promise((r) => setTimeout(r, 300));

    assert.equal(await latest('sensor_1'), 20, "sensor_1's latest temperature was overwritten by sensor_2");
    const alarms = await flux.api('GET', '/api/alarms?device_id=sensor_1');
    assert.deepEqual(alarms.body.items, [], "an alarm was raised for sensor_1 by sensor_2's message");
    assert.equal(await latest('sensor_2'), undefined, 'nothing is stored under sensor_2 either: the message was not its own reading');
    const db = new DatabaseSync(path.join(flux.dataDir, 'telemetry.db'), { readOnly: true });
    try {
      const rows = db.prepare("SELECT count(*) AS n FROM ts_series WHERE device_id IN ('sensor_123', 'sensor_2')").get() as { n: number };
      assert.equal(rows.n, 0, 'a series was stored for sensor_123 (a device that does not exist) or sensor_2');
    } finally {
      db.close();
    }
  });

  it('gives the reason in the trace, a counter in /api/metrics and the decode node\u2019s error output', async function () {
    const t = await flux.api('GET', '/api/devices/sensor_2/trace');
    const spans = (t.body.items as { spans: { stage: string; ok: boolean; error?: string; detail?: { device_id?: string } }[] }[]).flatMap((x) => x.spans.filter((s) => s.stage === 'ownership'));
    assert.equal(spans.length, 2, 'one refusal span per refused message');
    assert.ok(spans.every((s) => s.ok === false && /sensor_2' is not a gateway/.test(s.error ?? '')), JSON.stringify(spans));
    assert.deepEqual(spans.map((s) => s.detail?.device_id).sort(), ['sensor_1', 'sensor_123']);

    const metrics = await (await fetch(`${flux.url}/api/metrics`, { headers: { authorization: `Bearer ${flux.token}` } })).text();
    assert.match(metrics, /^flux_uplink_refused_total\{[^}]*reason="not_a_gateway"[^}]*\} 2$/m);

    const refusals = await until('the catch node saw both refusals', async () => {
      const r = await fetch(`${flux.url}/flows/test/refusals`);
      const body = r.status === 200 ? ((await r.json()) as { message: string; device_id: string; sender: string }[]) : [];
      return body.length >= 2 ? body : undefined;
    });
    assert.deepEqual(refusals.map((x) => x.device_id).sort(), ['sensor_1', 'sensor_123']);
    assert.ok(refusals.every((x) => x.sender === 'sensor_2' && /not a gateway/.test(x.message)), JSON.stringify(refusals));
  });
});
