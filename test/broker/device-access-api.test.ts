/** End to end against the real `flux` process: HTTP uplink, the commands API over MQTT, MQTT over WebSocket on the HTTP port. */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { nextMessage } from './access.ts';

describe('device access API (real flux process)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let secret: string;
  before(async () => {
    flux = await startFlux();
    const p = await flux.api('POST', '/api/products', { key: 'meter', name: 'Meter' });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    const d = await flux.api('POST', '/api/devices', { id: 'meter-1', product_id: p.body.id });
    assert.equal(d.status, 201, JSON.stringify(d.body));
    secret = d.body.secret;
  });
  after(async () => {
    await flux?.stop();
  });

  it('takes an HTTP uplink authenticated by the device secret, raw bytes or JSON, and refuses a wrong secret', async () => {
    const platform = mqtt.connect(`ws://127.0.0.1:${flux.http}/mqtt`, { username: 'e2e-dashboard', password: flux.token, reconnectPeriod: 0 });
    try {
      await new Promise((resolve, reject) => {
        platform.once('connect', resolve);
        platform.once('error', reject);
      });
      // the uplink reaches the bus: the trace module records every uplink, and the API answers its id
      const raw = await fetch(`${flux.url}/api/devices/meter-1/uplink`, { method: 'POST', headers: { 'x-device-secret': secret, 'content-type': 'application/octet-stream' }, body: new Uint8Array([1, 2, 3]) });
      assert.equal(raw.status, 202);
      const { id } = (await raw.json()) as { id: string };
      const trace = await flux.api('GET', `/api/trace/${id}`);
      assert.equal(trace.status, 200, 'the uplink reached the device bus (every uplink starts a trace there)');
      assert.equal(trace.body.transport ?? trace.body.start?.transport ?? 'http', 'http');
      const json = await fetch(`${flux.url}/api/devices/meter-1/uplink?type=event&event=alarm`, { method: 'POST', headers: { 'x-device-secret': secret, 'content-type': 'application/json' }, body: '{"values":{"t":1}}' });
      assert.equal(json.status, 202);
      const wrong = await fetch(`${flux.url}/api/devices/meter-1/uplink`, { method: 'POST', headers: { 'x-device-secret': 'wrong-secret-0123456789' }, body: 'x' });
      assert.equal(wrong.status, 401);
      assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, 'unauthorized');
      const none = await fetch(`${flux.url}/api/devices/meter-1/uplink`, { method: 'POST', body: 'x' });
      assert.equal(none.status, 401);
      const badType = await fetch(`${flux.url}/api/devices/meter-1/uplink?type=event`, { method: 'POST', headers: { 'x-device-secret': secret }, body: 'x' });
      assert.equal(badType.status, 400);
    } finally {
      platform.end(true);
    }
  });

  it('sends a command over MQTT: 200 delivered to a subscribed device, 409 offline without a connection, 404 for an unknown device', async () => {
    const offline = await flux.api('POST', '/api/devices/meter-1/commands', { command: 'reboot' });
    assert.equal(offline.status, 409);
    assert.equal(offline.body.error.code, 'device_offline');
    const unknown = await flux.api('POST', '/api/devices/nobody/commands', { command: 'reboot' });
    assert.equal(unknown.status, 404);
    const bad = await flux.api('POST', '/api/devices/meter-1/commands', { params: {} });
    assert.equal(bad.status, 400);

    const dev = mqtt.connect(`mqtt://127.0.0.1:${flux.mqtt}`, { clientId: 'meter-1', username: 'meter-1', password: secret, reconnectPeriod: 0 });
    try {
      await new Promise((resolve, reject) => {
        dev.once('connect', resolve);
        dev.once('error', reject);
      });
      await dev.subscribeAsync('/meter/meter-1/command', { qos: 1 });
      const got = nextMessage(dev, (t) => t === '/meter/meter-1/command');
      const r = await flux.api('POST', '/api/devices/meter-1/commands', { command: 'set_interval', params: { seconds: 60 } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.status, 'delivered');
      assert.equal(r.body.encoding, 'json');
      assert.equal(r.body.device_id, 'meter-1');
      assert.equal(r.body.deviceId, undefined, 'the answer is snake_case');
      const m = await got;
      assert.equal(m.packet.qos, 1);
      const cmd = JSON.parse(m.payload.toString());
      assert.deepEqual([cmd.id, cmd.command, cmd.params], [r.body.id, 'set_interval', { seconds: 60 }]);
      const d = await flux.api('GET', '/api/devices/meter-1');
      assert.equal(d.body.status, 'online');
    } finally {
      await dev.endAsync(true);
    }
  });

  it('documents the uplink and commands routes in the OpenAPI document', async () => {
    const doc = await flux.api('GET', '/api/openapi.json');
    assert.ok(doc.body.paths['/api/devices/{id}/uplink'].post);
    assert.ok(doc.body.paths['/api/devices/{id}/commands'].post);
  });
});
