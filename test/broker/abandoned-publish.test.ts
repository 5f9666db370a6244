/**
 * A device that closes its connection right after a QoS 1 PUBLISH, before the broker could write the
 * PUBACK: the uplink is already in the durable log, so it must still go through the pipeline. It
 * used to stay in the log unprocessed: the log's handled watermark stopped at it, nothing after it
 * was evicted, and once FLUX_RAW_MAX_BYTES of later traffic had passed the log refused every uplink.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { startAccess, until, type Access } from './access.ts';

/** CONNECT, wait for the CONNACK, then one QoS 1 PUBLISH and FIN at once (no time for the PUBACK). */
async function publishAndHangUp(a: Access, device: string, payload: string): Promise<void> {
  const s = net.connect(a.broker.port(), '127.0.0.1');
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `${device}/hangup`, keepalive: 30, username: device, password: Buffer.from(a.secrets[device]!) }));
  await new Promise((r) => s.once('data', r));
  s.end(mqttPacket.generate({ cmd: 'publish', topic: `/thermo/${device}/properties/report`, payload: Buffer.from(payload), qos: 1, messageId: 1, retain: false, dup: false }));
  await new Promise((r) => s.once('close', r));
}

describe('broker: a QoS 1 uplink whose sender hung up before its PUBACK', function () {
  this.timeout(60_000);
  let a: Access;
  afterEach(async () => {
    await a?.stop();
  });

  it('still reaches the bus, and the uplink log keeps taking uplinks past its budget', async () => {
    a = await startAccess({ env: { FLUX_RAW_MAX_BYTES: '256KiB' } });
    for (let i = 0; i < 5; i++) await publishAndHangUp(a, 'dev-1', `hung-up-${i}`);
    await until(() => a.uplinks.filter((u) => u.payload.toString().startsWith('hung-up-')).length === 5, 'the five uplinks of connections that hung up', 10_000);

    // well over the log's budget of later traffic: evicting handled segments must keep room for it
    const d = await a.device('dev-2');
    const body = Buffer.alloc(1024, 0x61);
    for (let i = 0; i < 600; i++) await d.publishAsync('/thermo/dev-2/properties/report', body, { qos: 1 });
    await d.endAsync();
    assert.equal(a.uplinks.filter((u) => u.deviceId === 'dev-2').length, 600);
  });
});
