/** The broker with Mosquitto's own clients (mosquitto_pub / mosquitto_sub, package mosquitto-clients) in MQTT 3.1.1 and 5. */
import assert from 'node:assert/strict';
import { startAccess, until, run, spawnCollect, MQTT_VERSIONS, ADMIN_TOKEN, type Access } from './access.ts';

for (const version of MQTT_VERSIONS) {
  const V = version === 5 ? 'mqttv5' : 'mqttv311';
  describe(`broker with mosquitto clients (-V ${V})`, function () {
    let a: Access;
    let port: string;
    beforeEach(async () => {
      a = await startAccess();
      port = String(a.broker.port());
    });
    afterEach(async () => {
      await a.stop();
    });

    it('mosquitto_pub with a device secret puts a QoS 1 report on the bus', async () => {
      const r = await run('mosquitto_pub', ['-V', V, '-h', '127.0.0.1', '-p', port, '-u', 'dev-1', '-P', a.secrets['dev-1']!, '-i', 'dev-1/mp', '-q', '1', '-t', '/thermo/dev-1/properties/report', '-m', '{"values":{"t":20}}']);
      assert.equal(r.code, 0, r.stderr);
      const up = await until(() => a.uplinks[0], 'the uplink');
      assert.equal(up.payload.toString(), '{"values":{"t":20}}');
      assert.equal(up.deviceId, 'dev-1');
    });

    it('mosquitto_pub with a wrong secret is refused as not authorised', async () => {
      const r = await run('mosquitto_pub', ['-V', V, '-h', '127.0.0.1', '-p', port, '-u', 'dev-1', '-P', 'wrong-secret-0123456789', '-t', '/thermo/dev-1/properties/report', '-m', 'x']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /not authori[sz]ed/i);
      assert.equal(a.uplinks.length, 0);
    });

    it('mosquitto_sub as a platform client receives device messages, QoS 0 and retained', async () => {
      const d = await a.device('dev-1', { protocolVersion: version });
      await d.publishAsync('/thermo/dev-1/state', 'retained-on', { qos: 1, retain: true });
      const sub = spawnCollect('mosquitto_sub', ['-V', V, '-h', '127.0.0.1', '-p', port, '-u', 'dashboard', '-P', ADMIN_TOKEN, '-t', '/thermo/#', '-q', '1', '-v']);
      try {
        await until(() => sub.out.stdout.includes('retained-on'), 'the retained message at mosquitto_sub', 5000);
        await d.publishAsync('/thermo/dev-1/properties/report', 'qos0-report', { qos: 0 });
        await until(() => sub.out.stdout.includes('/thermo/dev-1/properties/report qos0-report'), 'the QoS 0 report at mosquitto_sub', 5000);
      } finally {
        sub.kill();
      }
    });

    it('mosquitto_sub as a device gets its command and cannot subscribe to another device', async () => {
      const sub = spawnCollect('mosquitto_sub', ['-V', V, '-h', '127.0.0.1', '-p', port, '-u', 'dev-1', '-P', a.secrets['dev-1']!, '-t', '/thermo/dev-1/command', '-q', '1', '-v']);
      try {
        await until(() => a.statuses.some((s) => s.status === 'online'), 'mosquitto_sub connected');
        const identity = (await a.ctx.registry.devices.identity('dev-1'))!;
        let sent;
        for (let i = 0; i < 50; i++) {
          sent = await a.broker.sendCommand(identity, Buffer.from('{"command":"on"}'));
          if (sent.status === 'delivered') break;
          await new Promise((res) => setTimeout(res, 20)); // the SUBSCRIBE may land just after the CONNECT
        }
        assert.equal(sent!.status, 'delivered');
        await until(() => sub.out.stdout.includes('/thermo/dev-1/command {"command":"on"}'), 'the command at mosquitto_sub');
      } finally {
        sub.kill();
      }
      const bad = await run('mosquitto_sub', ['-V', V, '-h', '127.0.0.1', '-p', port, '-u', 'dev-1', '-P', a.secrets['dev-1']!, '-t', '/thermo/dev-2/command', '-C', '1', '-W', '2', '-d']);
      assert.match(bad.stdout, version === 5 ? /Subscribed \(mid: 1\): 135/ : /Subscribed \(mid: 1\): 128/);
      assert.match(bad.stderr, /All subscription requests were denied/);
    });
  });
}
