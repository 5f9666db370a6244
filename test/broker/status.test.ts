/** Online status from MQTT connections: connect, disconnect, silent loss (keepalive), session takeover. */
import assert from 'node:assert/strict';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { startAccess, until, MQTT_VERSIONS, type Access } from './access.ts';

/** A raw socket that sends CONNECT and then goes silent: the device lost power. */
function silentDevice(port: number, id: string, secret: string, keepalive: number, protocolVersion: 4 | 5): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clientId: `${id}/silent`, clean: true, keepalive, username: id, password: Buffer.from(secret) }));
    });
    s.once('data', (d) => (d[0] === 0x20 && d[3] === 0 ? resolve(s) : reject(new Error('CONNACK refused'))));
    s.once('error', reject);
  });
}

for (const protocolVersion of MQTT_VERSIONS) {
  describe(`device status over MQTT ${protocolVersion === 5 ? '5' : '3.1.1'}`, function () {
    let a: Access;
    beforeEach(async () => {
      a = await startAccess();
    });
    afterEach(async () => {
      await a.stop();
    });

    it('is online on connect and offline after a disconnect, in the registry and on the bus', async () => {
      const d = await a.device('dev-1', { protocolVersion });
      await until(() => a.statuses.length === 1, 'online event');
      assert.equal(a.statuses[0]!.status, 'online');
      assert.equal(a.statuses[0]!.deviceId, 'dev-1');
      await a.presence.flush();
      const online = await a.ctx.registry.devices.get('dev-1');
      assert.equal(online.status, 'online');
      assert.ok(online.last_online);
      await d.endAsync();
      await until(() => a.statuses.length === 2, 'offline event');
      assert.equal(a.statuses[1]!.status, 'offline');
      await a.presence.flush();
      assert.equal((await a.ctx.registry.devices.get('dev-1')).status, 'offline');
    });

    it('goes offline within keepalive × 1.5 after the device falls silent', async () => {
      const s = await silentDevice(a.broker.port(), 'dev-1', a.secrets['dev-1']!, 1, protocolVersion);
      try {
        await until(() => a.statuses.some((e) => e.status === 'online'), 'online');
        const t0 = Date.now();
        const off = await until(() => a.statuses.find((e) => e.status === 'offline'), 'offline', 3000);
        const took = Date.now() - t0;
        assert.ok(took <= 1500 + 250, `offline after ${took} ms, keepalive 1 s`);
        assert.equal(off.reason, 'keepalive timeout');
      } finally {
        s.destroy();
      }
    });

    it('stays online when the same client id connects again (session takeover) and goes offline after the last one leaves', async () => {
      const clientId = 'dev-1/fixed';
      const first = await a.device('dev-1', { protocolVersion, clientId });
      const firstClosed = new Promise<void>((r) => first.once('close', () => r()));
      const second = await a.device('dev-1', { protocolVersion, clientId });
      await firstClosed; // [MQTT-3.1.4-2]: the old session is taken over
      first.end(true);
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(a.statuses.map((e) => e.status), ['online'], 'no offline during the takeover');
      await a.presence.flush();
      assert.equal((await a.ctx.registry.devices.get('dev-1')).status, 'online');
      await second.endAsync();
      await until(() => a.statuses.length === 2, 'offline');
      assert.equal(a.statuses[1]!.status, 'offline');
    });
  });
}
