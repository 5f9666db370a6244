/**
 * Uplinks cross Node-RED in batches between FLUX's own nodes (runtime/flow-engine batch.ts), but a
 * user's node wired anywhere sees one message per uplink, shaped as the nodes' help texts say: debug
 * nodes (whole message) on every output of the default path, a function node, a catch node, a
 * complete node, and a user's node in the middle of the path (flux decode then takes ordinary messages). Read from the
 * editor's own comms socket, after a burst from real MQTT clients.
 */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';

/** Modbus register answers of unit `unit` (sensor_{unit}), the register `tenths` (°C × 10). */
const frame = (unit: number, tenths: number) => Buffer.from([unit, 3, 2, tenths >> 8, tenths & 0xff, 0, 0]);

interface DebugLine {
  id: string;
  msg: Record<string, unknown>;
}

/** Every debug message the editor would show, by debug node id, from Node-RED's comms socket. */
async function watchDebug(flux: FluxProcess): Promise<{ lines: DebugLine[]; close(): void }> {
  const ws = new WebSocket(`ws://127.0.0.1:${flux.http}/editor/comms`);
  const lines: DebugLine[] = [];
  let auth: string | undefined;
  ws.on('message', (data) => {
    type Comms = { topic?: string; data?: { id?: string; msg?: string; format?: string }; auth?: string };
    const batch = JSON.parse(String(data)) as Comms[] | Comms;
    for (const m of Array.isArray(batch) ? batch : [batch]) {
      if (m.auth) auth = m.auth;
      if (m.topic === 'debug' && m.data?.id && typeof m.data.msg === 'string') lines.push({ id: m.data.id, msg: JSON.parse(m.data.msg) as Record<string, unknown> });
    }
  });
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  ws.send(JSON.stringify({ auth: flux.token }));
  assert.equal(await until('the comms socket to answer the token', () => auth), 'ok');
  ws.send(JSON.stringify({ subscribe: 'debug' }));
  return { lines, close: () => ws.close() };
}

const debug = (id: string) => ({ id, type: 'debug', z: 'n-tab', name: `debug ${id}`, active: true, tosidebar: true, console: false, tostatus: false, complete: 'true', targetType: 'full', wires: [] });

// x and y make them flow nodes (Node-RED takes a node without a position for a config node)
const FLOW = [
  { id: 'n-tab', type: 'tab', label: 'batches' },
  { id: 'n-in', type: 'flux device in', z: 'n-tab', product: 'modbus', device: '', kind: 'uplink', shared: true, wires: [['n-decode', 'n-dbg-in', 'n-fn']] },
  { id: 'n-decode', type: 'flux decode', z: 'n-tab', plugin: '', wires: [['n-rule', 'n-dbg-decode']] },
  { id: 'n-rule', type: 'flux rule', z: 'n-tab', mode: 'inline', script: 'return msg.values.temperature > 30;', env: '{}', wires: [['n-store', 'n-dbg-hot'], ['n-store', 'n-dbg-cold'], ['n-dbg-rule-errors']] },
  { id: 'n-store', type: 'flux store', z: 'n-tab', wires: [['n-dbg-stored']] },
  { id: 'n-fn', type: 'function', z: 'n-tab', name: 'user function', func: 'return { payload: { id: msg._msgid, batch: msg._flux_batch !== undefined, device: msg.device && msg.device.id } };', outputs: 1, wires: [['n-dbg-fn']] },
  { id: 'n-complete', type: 'complete', z: 'n-tab', scope: ['n-store'], uncaught: false, wires: [['n-dbg-complete']] },
  { id: 'n-catch', type: 'catch', z: 'n-tab', scope: null, uncaught: false, wires: [['n-dbg-catch']] },
  // a user's node in the middle of the path: flux decode gets ordinary messages from it
  { id: 'n-in2', type: 'flux device in', z: 'n-tab', product: '', device: 'sensor_2', kind: 'uplink', shared: true, wires: [['n-pass']] },
  { id: 'n-pass', type: 'function', z: 'n-tab', name: 'pass', func: 'msg.passed = true; return msg;', outputs: 1, wires: [['n-decode2']] },
  { id: 'n-decode2', type: 'flux decode', z: 'n-tab', plugin: '', wires: [['n-dbg-decode2']] },
].map((n, i) => (n.type === 'tab' ? n : { x: 100 + 10 * i, y: 100 + 40 * i, ...n }));
const FLOW_WITH_DEBUG = [
  ...FLOW,
  ...['n-dbg-in', 'n-dbg-decode', 'n-dbg-hot', 'n-dbg-cold', 'n-dbg-rule-errors', 'n-dbg-stored', 'n-dbg-fn', 'n-dbg-catch', 'n-dbg-decode2', 'n-dbg-complete'].map(debug).map((n, i) => ({ x: 600, y: 100 + 40 * i, ...n })),
];

describe('batches through Node-RED: what a user node sees', function () {
  this.timeout(120_000);
  let flux: FluxProcess;

  before(async function () {
    flux = await startFlux();
  });

  after(async function () {
    await flux?.stop();
  });

  it('one message per uplink at every user node, with the documented fields, while FLUX nodes pass batches', async function () {
    assert.equal((await flux.api('POST', '/api/products', { key: 'modbus', name: 'Modbus sensor', protocol_plugin_id: 'modbus', metadata: { properties: [{ id: 'temperature', type: 'float' }] } })).status, 201);
    const secrets: Record<string, string> = {};
    for (const id of ['sensor_1', 'sensor_2']) {
      const d = await flux.api('POST', '/api/devices', { id, product_id: 'modbus' });
      assert.equal(d.status, 201);
      secrets[id] = d.body.secret as string;
    }
    const deployed = await fetch(`${flux.url}/editor/flows`, { method: 'POST', headers: { authorization: `Bearer ${flux.token}`, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' }, body: JSON.stringify(FLOW_WITH_DEBUG) });
    assert.ok(deployed.status === 200 || deployed.status === 204, `deploy answered ${deployed.status}`);
    const debugLines = await watchDebug(flux);
    const clients = await Promise.all(['sensor_1', 'sensor_2'].map((id) => mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { clientId: id, username: id, password: secrets[id] })));
    try {
      // a burst: 12 hot and 8 cold readings and 3 frames the plugin cannot decode from sensor_1, 5 from sensor_2
      const publishes: Promise<unknown>[] = [];
      for (let i = 0; i < 12; i++) publishes.push(clients[0]!.publishAsync('/modbus/sensor_1/properties/report', frame(1, 400 + i), { qos: 1 }));
      for (let i = 0; i < 8; i++) publishes.push(clients[0]!.publishAsync('/modbus/sensor_1/properties/report', frame(1, 100 + i), { qos: 1 }));
      for (let i = 0; i < 3; i++) publishes.push(clients[0]!.publishAsync('/modbus/sensor_1/properties/report', Buffer.from('ff'), { qos: 1 }));
      for (let i = 0; i < 5; i++) publishes.push(clients[1]!.publishAsync('/modbus/sensor_2/properties/report', frame(2, 250 + i), { qos: 1 }));
      await Promise.all(publishes);

      const expected: Record<string, number> = { 'n-dbg-in': 28, 'n-dbg-fn': 28, 'n-dbg-decode': 25, 'n-dbg-hot': 12, 'n-dbg-cold': 13, 'n-dbg-stored': 25, 'n-dbg-catch': 3, 'n-dbg-decode2': 5, 'n-dbg-complete': 25 };
      const count = (id: string) => debugLines.lines.filter((l) => l.id === id).length;
      await until(`debug counts ${JSON.stringify(expected)}`, () => (Object.entries(expected).every(([id, n]) => count(id) >= n) ? true : undefined), 30_000).catch((err: Error) => {
        throw new Error(`${err.message}; seen ${JSON.stringify(Object.fromEntries(Object.keys(expected).map((id) => [id, count(id)])))}; FLUX printed: ${flux.output().slice(-3000)}`);
      });
      await new Promise((r) => setTimeout(r, 500)); // nothing more arrives
      for (const [id, n] of Object.entries(expected)) assert.equal(count(id), n, `${id} saw ${count(id)} messages, not one per uplink (${n})`);

      const at = (id: string) => debugLines.lines.filter((l) => l.id === id).map((l) => l.msg);
      for (const m of debugLines.lines.map((l) => l.msg)) assert.equal(m._flux_batch, undefined, 'no user node sees a batch message');
      // after flux device in: the uplink as the help text says (payload and raw the bytes, device, uplink)
      const ids = new Set<string>();
      for (const m of at('n-dbg-in')) {
        const up = m.uplink as { id: string; type: string; ts: number; transport: string };
        assert.equal(m._msgid, up.id, 'the message id is the uplink id');
        ids.add(up.id);
        assert.equal(up.type, 'properties');
        assert.equal(up.transport, 'mqtt');
        assert.match(String((m.device as { id: string }).id), /^sensor_[12]$/);
        assert.ok(m.payload !== undefined && m.raw !== undefined);
      }
      assert.equal(ids.size, 28, 'every uplink once');
      for (const m of at('n-dbg-fn')) {
        const p = m.payload as { id: string; batch: boolean; device: string };
        assert.equal(p.batch, false, 'the function node got one uplink, not a batch');
        assert.ok(ids.has(p.id));
      }
      // after flux decode: the StandardMessage, the plugin and the product
      for (const m of at('n-dbg-decode')) {
        const p = m.payload as { device_id: string; values: { temperature: number } };
        assert.equal(typeof p.values.temperature, 'number');
        assert.equal(p.device_id, (m.device as { id: string }).id);
        assert.equal((m.plugin as { id: string }).id, 'modbus');
        assert.equal((m.product as { key: string }).key, 'modbus');
      }
      // the rule's outputs: triggered with msg.rule, not triggered as the decoded message
      for (const m of at('n-dbg-hot')) assert.ok((m.payload as { values: { temperature: number } }).values.temperature > 30 && m.rule !== undefined);
      for (const m of at('n-dbg-cold')) assert.ok((m.payload as { values: { temperature: number } }).values.temperature <= 30 && m.rule === undefined);
      // after flux store: what was stored
      for (const m of at('n-dbg-stored')) assert.deepEqual(m.stored, { points: 1, refused: [] });
      // the catch node: each undecodable frame as its own message, with its error and frame
      for (const m of at('n-dbg-catch')) {
        assert.ok(ids.has(m._msgid as string), 'the catch node gets the uplink itself');
        assert.equal((m.error as { source: { type: string } }).source.type, 'flux decode');
        assert.ok(m.raw !== undefined, 'with the frame');
      }
      // a complete node watching flux store: each stored uplink
      assert.deepEqual(new Set(at('n-dbg-complete').map((m) => m._msgid)), new Set(at('n-dbg-stored').map((m) => m._msgid)));
      // flux decode fed ordinary messages by a user's node works as before
      for (const m of at('n-dbg-decode2')) {
        assert.equal(m.passed, true);
        assert.equal((m.payload as { device_id: string }).device_id, 'sensor_2');
      }
      // every decoded uplink was written, and the undecodable ones finished as failed
      const metrics = String((await flux.api('GET', '/api/metrics')).body);
      assert.match(metrics, /flux_pipeline_messages_total\{[^}]*outcome="failed"[^}]*\} 3\n/);
      assert.match(metrics, /flux_pipeline_messages_total\{[^}]*outcome="done"[^}]*\} 25\n/);
      // the burst crossed Node-RED in fewer batch messages than uplinks
      const batches = Number(/flux_flow_batch_uplinks_count\{[^}]*\} (\d+)/.exec(metrics)?.[1]);
      const uplinks = Number(/flux_flow_batch_uplinks_sum\{[^}]*\} (\d+)/.exec(metrics)?.[1]);
      assert.equal(uplinks, 28 + 5, 'both flux device in nodes sent every uplink in a batch');
      assert.ok(batches < uplinks, `${batches} batch messages for ${uplinks} uplinks`);
      // (the store keeps one point per device, metric and millisecond: a burst shares milliseconds)
      assert.match(metrics, /flux_storage_points_written_total\{[^}]*\} 25\n/);
    } finally {
      await Promise.all(clients.map((c) => c.endAsync()));
      debugLines.close();
    }
  });
});
