/**
 * Before login, what large unfinished CONNECTs hold is bounded in all (runtime/broker/guard.ts
 * PreLoginBudget): each connection was bounded by the packet size only, so sockets sending most of a
 * large CONNECT and never the rest held ~250 KiB each until the connect timeout, with no credentials.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { startAccess, until, type Access } from './access.ts';

/** A socket that sends the fixed header of a CONNECT of `length` bytes and half its body, never the rest. */
async function unfinishedConnect(a: Access, length: number) {
  const s = net.connect(a.broker.port(), '127.0.0.1');
  let closed = false;
  s.on('error', () => {});
  s.on('close', () => (closed = true));
  await new Promise((r) => s.once('connect', r));
  const header = [0x10];
  for (let n = length; ; ) {
    const b = n % 128;
    n = Math.floor(n / 128);
    header.push(n > 0 ? b | 0x80 : b);
    if (n === 0) break;
  }
  s.write(Buffer.concat([Buffer.from(header), Buffer.alloc(Math.floor(length / 2), 0x61)]));
  return { s, closed: () => closed };
}

describe('broker: large unfinished CONNECTs share a pre-login budget', function () {
  this.timeout(30_000);
  let a: Access;
  afterEach(async () => {
    await a?.stop();
  });

  it('closes the connection whose large CONNECT would pass the budget; small CONNECTs and, once it is free, large ones get in', async () => {
    a = await startAccess({ broker: { preLoginBytes: 512 * 1024 } });
    const holders = [await unfinishedConnect(a, 240 * 1024), await unfinishedConnect(a, 240 * 1024)];
    const third = await unfinishedConnect(a, 240 * 1024);
    await until(() => third.closed(), 'the connection past the budget closed');
    assert.ok(a.logs.some((l) => l.msg === 'MQTT connection closed' && String(l.reason).includes('pre-login budget')));
    assert.ok(!holders[0]!.closed() && !holders[1]!.closed(), 'the connections within the budget stay');

    // an ordinary device logs in meanwhile: small CONNECTs never wait on the budget
    const small = await a.device('dev-1');
    assert.ok(small.connected);
    await small.endAsync();

    // a device's large CONNECT (a 40 KiB will on its own topic) is refused while the budget is held…
    const will = { topic: '/thermo/dev-1/status', payload: Buffer.alloc(40 * 1024, 0x62), qos: 0 as const, retain: false };
    await assert.rejects(a.device('dev-1', { will, reconnectPeriod: 0, connectTimeout: 3000 }));
    // …and gets in once the unfinished ones are gone
    for (const h of holders) h.s.destroy();
    await until(() => holders.every((h) => h.closed()), 'the holders closed');
    const large = await a.device('dev-1', { will, reconnectPeriod: 0 });
    assert.ok(large.connected);
    await large.endAsync();
  });
});
