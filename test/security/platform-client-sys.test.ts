/**
 * A platform client (admin token) is not served `$SYS` (docs/broker.md): subscribing to `$SYS/#` is
 * refused (SUBACK 0x80 / 0x87) and neither it nor `#` delivers the broker's `$SYS` messages (aedes
 * publishes `$SYS/<id>/new/clients` on every connection), with mqtt.js and mosquitto_sub.
 */
import assert from 'node:assert/strict';
import { startInstance, mqttConnect, run, type Instance } from './helpers.ts';
import { TEST_TOKEN } from '../helpers/flux-process.ts';

describe('security: platform clients and $SYS', function () {
  this.timeout(60_000);
  let f: Instance;
  let secret: string;

  before(async function () {
    f = await startInstance();
    assert.equal((await f.api('POST', '/api/products', { key: 'lamp', name: 'Lamp' })).status, 201);
    secret = (await f.api('POST', '/api/devices', { id: 'lamp_1', product_id: 'lamp' })).body.secret;
  });

  after(async function () {
    await f?.stop();
  });

  for (const v of [4, 5] as const) {
    it(`MQTT ${v === 4 ? '3.1.1' : '5'}: refuses $SYS/# to a platform client and delivers no $SYS message to it`, async function () {
      const p = await mqttConnect(f.mqttUrl, { username: 'dashboard', password: TEST_TOKEN, clientId: `dashboard-${v}`, protocolVersion: v });
      assert.ok(p.client, p.error);
      const c = p.client;
      const got: string[] = [];
      c.on('message', (t) => got.push(t));
      // mqtt.js rejects a refused subscription, with the SUBACK on the error
      const sys = await c.subscribeAsync('$SYS/#', { qos: 0 }).then(
        (granted) => granted[0]!.qos,
        (err: { packet?: { granted?: number[] } }) => err.packet?.granted?.[0],
      );
      assert.equal(sys, v === 4 ? 0x80 : 0x87, `SUBACK for $SYS/# answered ${sys}`);
      const all = await c.subscribeAsync('#', { qos: 0 });
      assert.equal(all[0]!.qos, 0, 'a platform client may still subscribe to everything else');
      // a device connecting makes aedes publish $SYS/<broker id>/new/clients
      const d = await mqttConnect(f.mqttUrl, { username: 'lamp_1', password: secret, clientId: 'lamp_1', protocolVersion: v });
      assert.ok(d.client, d.error);
      await d.client.publishAsync('/lamp/lamp_1/properties/report', '{"values":{"on":1}}', { qos: 1 });
      await new Promise((r) => setTimeout(r, 500));
      await d.client.endAsync();
      await c.endAsync();
      assert.ok(got.includes('/lamp/lamp_1/properties/report'), 'the platform client receives device traffic');
      assert.deepEqual(got.filter((t) => t.startsWith('$SYS')), [], 'a $SYS message reached the platform client');
    });
  }

  it('mosquitto_sub as a platform client receives no $SYS message', async function () {
    const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(f.mqtt), '-u', 'dashboard', '-P', TEST_TOKEN, '-i', 'dashboard-mosq', '-t', '$SYS/#', '-v', '-W', '3'], 10_000);
    await new Promise((r) => setTimeout(r, 800));
    const d = await mqttConnect(f.mqttUrl, { username: 'lamp_1', password: secret, clientId: 'lamp_1/2', protocolVersion: 4 });
    assert.ok(d.client, d.error);
    await d.client.endAsync();
    const r = await sub;
    assert.doesNotMatch(r.stdout, /\$SYS/, `mosquitto_sub received: ${r.stdout.slice(0, 200)}`);
  });
});
