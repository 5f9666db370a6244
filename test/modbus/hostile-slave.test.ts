/**
 * Hostile or broken slaves against one endpoint (runtime/modbus/endpoint.ts). A slave that floods the
 * connection with answers to no request: the master drops the connection once the slave sent more
 * than its requests can be answered with, instead of reading the flood for ever (which took the event
 * loop, and a core, from the other endpoints' polls: a healthy slave's polls timed out beside it).
 * A connection lost in the middle of an answer: the next connection must not see its partial frame.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { createEndpoint, readRequest, type Endpoint } from '../../runtime/modbus/index.ts';

/** A Modbus TCP slave that writes well-formed answers with transaction id 0 (never used by the master) as fast as it can, in both modes' framing. */
async function floodingSlave(): Promise<{ port: number; received: () => number; closedByMaster: () => number; close(): Promise<void> }> {
  const frame = Buffer.from([0, 0, 0, 0, 0, 5, 1, 3, 2, 0, 42]);
  const chunk = Buffer.concat(Array.from({ length: 4096 }, () => frame));
  let received = 0;
  let closed = 0;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('data', (d) => (received += d.length));
    s.on('close', () => {
      sockets.delete(s);
      closed++;
    });
    const pump = () => {
      while (!s.destroyed && s.write(chunk)) {
        /* as fast as the socket takes it */
      }
    };
    s.on('drain', pump);
    pump();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    received: () => received,
    closedByMaster: () => closed,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

describe('modbus endpoint: a slave flooding the connection with answers to no request', function () {
  this.timeout(20_000);
  let slave: Awaited<ReturnType<typeof floodingSlave>>;
  let ep: Endpoint | undefined;

  beforeEach(async function () {
    slave = await floodingSlave();
  });

  afterEach(async function () {
    ep?.close();
    await slave.close();
  });

  for (const mode of ['tcp', 'rtu-over-tcp'] as const) {
    it(`${mode}: the request fails as a protocol error and the connection is dropped, not read until the timeout`, async function () {
      ep = createEndpoint({ host: '127.0.0.1', port: slave.port, mode, backoffMinMs: 60_000 });
      const started = Date.now();
      const err = await ep.request(1, readRequest(3, 0, 1), 5000).then(
        () => assert.fail('a flood is no answer'),
        (e: { reason: string; message: string }) => e,
      );
      assert.equal(err.reason, 'protocol', err.message);
      assert.match(err.message, /answers to no request/);
      assert.ok(Date.now() - started < 5000, 'failed before its timeout');
      const st = ep.stats();
      assert.equal(st.connected, false);
      assert.equal(st.connects, 1);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(slave.closedByMaster(), 1, 'the master closed the connection');
      // while the backoff runs, requests fail at once naming the reason
      const again = await ep.request(1, readRequest(3, 0, 1), 1000).catch((e: Error) => e);
      assert.match(String((again as Error).message), /answers to no request/);
    });
  }
});

describe('modbus endpoint: a connection lost in the middle of an answer', function () {
  this.timeout(20_000);

  it('tcp: the next connection starts clean (the partial answer is not glued to its first answer)', async function () {
    let conns = 0;
    const sockets = new Set<net.Socket>();
    // the first connection sends 5 bytes of its answer and dies; later ones answer in full
    const srv = net.createServer((s) => {
      const n = ++conns;
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
      s.on('data', (d) => {
        const answer = Buffer.from([0, 0, 0, 0, 0, 5, 1, 3, 2, 0, 42]);
        answer.writeUInt16BE(d.readUInt16BE(0), 0);
        if (n > 1) return void s.write(answer);
        s.write(answer.subarray(0, 5));
        setTimeout(() => s.destroy(), 50);
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const ep = createEndpoint({ host: '127.0.0.1', port: (srv.address() as net.AddressInfo).port, mode: 'tcp', backoffMinMs: 50 });
    try {
      const lost = await ep.request(1, readRequest(3, 0, 1), 2000).catch((e: { reason: string }) => e);
      assert.equal((lost as { reason: string }).reason, 'connection');
      await new Promise((r) => setTimeout(r, 100));
      const data = await ep.request(1, readRequest(3, 0, 1), 2000);
      assert.equal(data.readUInt16BE(0), 42);
      assert.equal(ep.stats().connects, 2, 'no extra reconnect');
    } finally {
      ep.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
