/**
 * Commands flow from the platform to a device, never from the device: a device publishing on its own
 * command topic fed every offline persistent session of its own (`{deviceId}/…` client ids,
 * clean=false) an in-memory queue without a bound, so one device could grow the broker's heap at will.
 */
import assert from 'node:assert/strict';
import { startAccess, until, type Access } from '../broker/access.ts';

/** What the broker holds queued for an offline client id. */
async function queued(a: Access, clientId: string): Promise<unknown[]> {
  const persistence = (a.broker.aedes as unknown as { persistence: { outgoingStream(c: { id: string }): AsyncIterable<unknown> } }).persistence;
  const out: unknown[] = [];
  for await (const p of persistence.outgoingStream({ id: clientId })) out.push(p);
  return out;
}

describe('security: a device cannot publish on its command topic', function () {
  this.timeout(30_000);
  let a: Access;
  before(async () => {
    a = await startAccess();
  });
  after(async () => {
    await a?.stop();
  });

  for (const protocolVersion of [4, 5] as const) {
    it(`MQTT ${protocolVersion === 5 ? '5: PUBACK 0x87' : '3.1.1: connection closed'}, and nothing is queued for its persistent session`, async () => {
      const sink = `dev-1/sink${protocolVersion}`;
      const session = protocolVersion === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
      const s = await a.device('dev-1', { protocolVersion, clientId: sink, ...session });
      await s.subscribeAsync('/thermo/dev-1/command/#', { qos: 1 });
      await s.endAsync();

      for (const topic of ['/thermo/dev-1/command', '/thermo/dev-1/command/x']) {
        const d = await a.device('dev-1', { protocolVersion });
        if (protocolVersion === 5) {
          await assert.rejects(d.publishAsync(topic, Buffer.alloc(1024), { qos: 1 }), (err: Error & { code?: number }) => err.code === 0x87);
          assert.equal(d.connected, true);
          await d.endAsync();
        } else {
          const closed = new Promise<void>((r) => d.once('close', () => r()));
          d.publish(topic, Buffer.alloc(1024), { qos: 1 });
          await closed;
          d.end(true);
        }
      }
      await until(() => a.logs.some((l) => l.msg === 'MQTT publish refused: outside the device topic prefix' && l.topic === '/thermo/dev-1/command/x'), 'the logged refusal');
      assert.deepEqual(await queued(a, sink), []);

      // a command from the platform is still queued for that session
      const r = await a.broker.sendCommand((await a.ctx.registry.devices.identity('dev-1'))!, Buffer.from('{"command":"reboot"}'));
      assert.equal(r.status, 'queued');
      assert.equal((await queued(a, sink)).length, 1);
    });
  }
});
