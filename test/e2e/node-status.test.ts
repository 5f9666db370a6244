/**
 * The counters under the default flow's nodes, as the editor shows them: read from Node-RED's own
 * comms WebSocket (the one the editor listens on), after a few uplinks sent by a real MQTT client.
 * They must show the true counts, not the first message's.
 */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';

const FRAME = Buffer.from('01030201c50000', 'hex');

/** The newest status text of every node, kept up to date from the editor's comms socket once it accepted the token. */
async function watchStatuses(flux: FluxProcess): Promise<{ texts: Map<string, string>; close(): void }> {
  const ws = new WebSocket(`ws://127.0.0.1:${flux.http}/editor/comms`);
  const texts = new Map<string, string>();
  let auth: string | undefined;
  ws.on('message', (data) => {
    type CommsMessage = { topic?: string; data?: { text?: string }; auth?: string };
    const batch = JSON.parse(String(data)) as CommsMessage[] | CommsMessage;
    for (const m of Array.isArray(batch) ? batch : [batch]) {
      if (m.auth) auth = m.auth;
      if (m.topic?.startsWith('status/') && typeof m.data?.text === 'string') texts.set(m.topic.slice('status/'.length), m.data.text);
    }
  });
  await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  ws.send(JSON.stringify({ auth: flux.token }));
  assert.equal(await until('the comms socket to answer the token', () => auth), 'ok', 'the editor comms accepted the admin token');
  ws.send(JSON.stringify({ subscribe: 'status/#' }));
  return { texts, close: () => ws.close() };
}

describe('node status counters in the editor', function () {
  this.timeout(120_000);
  let flux: FluxProcess;

  before(async function () {
    flux = await startFlux();
  });

  after(async function () {
    await flux?.stop();
  });

  it('show the true counts of received, decoded, ruled and stored uplinks, not the first one only', async function () {
    const product = await flux.api('POST', '/api/products', { key: 'modbus', name: 'Modbus sensor', protocol_plugin_id: 'modbus', metadata: { properties: [{ id: 'temperature', type: 'float' }] } });
    assert.equal(product.status, 201, JSON.stringify(product.body));
    const device = await flux.api('POST', '/api/devices', { id: 'sensor_1', product_id: 'modbus' });
    assert.equal(device.status, 201);
    const flows = (await (await fetch(`${flux.url}/editor/flows`, { headers: { authorization: `Bearer ${flux.token}` } })).json()) as { id: string; type: string }[];
    const idOf = (type: string) => {
      const n = flows.find((f) => f.type === type);
      assert.ok(n, `the default flow has a ${type} node`);
      return n.id;
    };
    const ids = { in: idOf('flux device in'), decode: idOf('flux decode'), rule: idOf('flux rule'), store: idOf('flux store') };

    const statuses = await watchStatuses(flux);
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { clientId: 'sensor_1', username: 'sensor_1', password: device.body.secret as string });
    try {
      // spread over more than one status interval, so both the immediate and the held update are exercised
      for (let i = 0; i < 5; i++) {
        await client.publishAsync('/modbus/sensor_1/properties/report', FRAME, { qos: 1 });
        await new Promise((r) => setTimeout(r, 150));
      }
      const expected = { in: '5 received', decode: '5 decoded', rule: '0/5 triggered', store: '5 stored' };
      await until(
        `the statuses ${JSON.stringify(expected)}`,
        () => (Object.entries(expected).every(([k, text]) => statuses.texts.get(ids[k as keyof typeof ids]) === text) ? true : undefined),
        20_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; shown: ${JSON.stringify(Object.fromEntries(Object.entries(ids).map(([k, id]) => [k, statuses.texts.get(id)])))}`);
      });
    } finally {
      await client.endAsync();
      statuses.close();
    }
  });
});
