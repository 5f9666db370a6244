/**
 * Retained messages of a device are bounded (docs/broker.md "Limits"): aedes keeps one per topic
 * until it is cleared, and a device has as many topics under its prefix as it likes, so one device
 * publishing retained messages on ever new topics grew the broker's heap without a bound.
 */
import assert from 'node:assert/strict';
import { startAccess, until, type Access } from './access.ts';
import { MAX_RETAINED_BYTES, MAX_RETAINED_TOPICS } from '../../runtime/broker/retained.ts';

/** Retained messages a fresh platform subscriber gets for `filter`. */
async function retainedFor(a: Access, filter: string): Promise<Map<string, number>> {
  const p = await a.platform();
  const got = new Map<string, number>();
  p.on('message', (t, payload, packet) => {
    if (packet.retain) got.set(t, payload.length);
  });
  await p.subscribeAsync(filter, { qos: 1 });
  await new Promise((r) => setTimeout(r, 300));
  await p.endAsync();
  return got;
}

describe('broker: retained messages of a device', function () {
  this.timeout(30_000);
  let a: Access;
  before(async () => {
    a = await startAccess();
  });
  after(async () => {
    await a?.stop();
  });

  it(`keeps at most ${MAX_RETAINED_TOPICS} topics per device: MQTT 5 PUBACK 0x87 past it, and clearing one makes room`, async () => {
    const d = await a.device('dev-1', { protocolVersion: 5 });
    for (let i = 0; i < MAX_RETAINED_TOPICS; i++) await d.publishAsync(`/thermo/dev-1/r/${i}`, Buffer.alloc(100), { qos: 1, retain: true });
    await d.publishAsync('/thermo/dev-1/r/0', Buffer.alloc(200), { qos: 1, retain: true }); // the same topic again
    await assert.rejects(d.publishAsync('/thermo/dev-1/r/new', Buffer.alloc(100), { qos: 1, retain: true }), (err: Error & { code?: number }) => err.code === 0x87);
    assert.equal(d.connected, true);
    await d.publishAsync('/thermo/dev-1/plain', Buffer.alloc(100), { qos: 1 }); // not retained: no quota
    await d.publishAsync('/thermo/dev-1/r/1', Buffer.alloc(0), { qos: 1, retain: true }); // cleared
    await d.publishAsync('/thermo/dev-1/r/new', Buffer.alloc(100), { qos: 1, retain: true });
    await d.endAsync();
    const kept = await retainedFor(a, '/thermo/dev-1/r/#');
    assert.equal(kept.size, MAX_RETAINED_TOPICS);
    assert.equal(kept.has('/thermo/dev-1/r/1'), false);
    assert.equal(kept.get('/thermo/dev-1/r/0'), 200);
    await until(() => a.logs.find((l) => l.msg === 'MQTT publish refused: retained message over the device quota' && l.topic === '/thermo/dev-1/r/new'), 'the logged refusal');
  });

  it(`keeps at most ${MAX_RETAINED_BYTES} bytes per device: MQTT 3.1.1 is closed past it`, async () => {
    const d = await a.device('dev-2');
    await d.publishAsync('/thermo/dev-2/big/0', Buffer.alloc(MAX_RETAINED_BYTES - 10), { qos: 1, retain: true });
    const closed = new Promise<void>((r) => d.once('close', () => r()));
    d.publish('/thermo/dev-2/big/1', Buffer.alloc(100), { qos: 1, retain: true });
    await closed;
    d.end(true);
    const kept = await retainedFor(a, '/thermo/dev-2/big/#');
    assert.deepEqual([...kept.keys()], ['/thermo/dev-2/big/0']);
  });
});
