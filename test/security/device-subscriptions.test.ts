/**
 * A device's subscriptions are bounded (docs/broker.md "Limits"). Any filter below its command topic
 * was granted, without a count or a length limit, and each is kept for the session (a persistent
 * one after the connection too): one device could grow the broker's heap with tens of thousands of
 * filters per session, and with as many sessions as it likes.
 */
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { startAccess, type Access } from '../broker/access.ts';
import { MAX_DEVICE_FILTER_LENGTH, MAX_DEVICE_SUBSCRIPTIONS } from '../../runtime/broker/index.ts';

const filter = (i: number) => `/thermo/dev-1/command/f${i}`;

/** The granted codes of a SUBACK (mqtt.js rejects a SUBACK with any refusal, so the packet itself). */
function suback(d: MqttClient, filters: string | Record<string, { qos: 0 | 1 }>): Promise<number[]> {
  return new Promise((resolve) => {
    const on = (p: { cmd: string }) => {
      if (p.cmd !== 'suback') return;
      d.off('packetreceive', on);
      resolve((p as unknown as { granted: number[] }).granted);
    };
    d.on('packetreceive', on);
    if (typeof filters === 'string') d.subscribe(filters, { qos: 1 }, () => {});
    else d.subscribe(filters, () => {});
  });
}

describe('security: subscriptions of a device', function () {
  this.timeout(30_000);
  let a: Access;
  before(async () => {
    a = await startAccess();
  });
  after(async () => {
    await a?.stop();
  });

  for (const [protocolVersion, clean] of [[4, false], [5, true]] as const) {
    it(`MQTT ${protocolVersion === 5 ? '5, clean' : '3.1.1, persistent'}: at most ${MAX_DEVICE_SUBSCRIPTIONS} per connection, ${MAX_DEVICE_FILTER_LENGTH} characters each; the connection stays`, async () => {
      const refused = protocolVersion === 5 ? 0x87 : 0x80;
      const d = await a.device('dev-1', { protocolVersion, clean, clientId: `dev-1/subs${protocolVersion}` });
      // one SUBSCRIBE with more filters than the limit: the first ones are granted, the rest refused
      const many = Object.fromEntries(Array.from({ length: MAX_DEVICE_SUBSCRIPTIONS + 8 }, (_, i) => [filter(i), { qos: 1 as const }]));
      const granted = await suback(d, many);
      assert.equal(granted.filter((g) => g < 0x80).length, MAX_DEVICE_SUBSCRIPTIONS);
      assert.equal(granted.filter((g) => g === refused).length, 8);
      // a new filter is refused, one it holds is granted again
      assert.deepEqual(await suback(d, filter(1000)), [refused]);
      assert.deepEqual(await suback(d, { [filter(0)]: { qos: 0 } }), [0]);
      // an unsubscribe makes room
      await d.unsubscribeAsync(filter(0));
      assert.deepEqual(await suback(d, filter(1000)), [1]);
      // too long a filter, though below the command topic
      assert.deepEqual(await suback(d, `/thermo/dev-1/command/${'x'.repeat(MAX_DEVICE_FILTER_LENGTH)}`), [refused]);
      assert.equal(d.connected, true);
      await d.endAsync();
      assert.ok(a.logs.some((l) => l.msg === 'MQTT subscribe refused: subscription limit'));
    });
  }
});
