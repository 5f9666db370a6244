/**
 * GET /api/reports/telemetry.csv streams a product's report device by device. It wrote every row
 * without waiting for the client: a client that reads slowly (or not at all) made the server
 * queue the whole report in memory, and a client that went away left it querying and writing
 * every device's rows to nobody. It now waits for the socket to drain and stops when the client is gone.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Socket } from 'node:net';
import { TEST_TOKEN } from '../helpers/flux-process.ts';
import { startTestFlux, type TestFlux } from '../users/helpers.ts';

const DEVICES = 10;
const ROWS = 60_000; // per device: ~3.5 MB of CSV each, ~35 MB in all
const T0 = Date.UTC(2026, 0, 1);

describe('the CSV report waits for its client', function () {
  this.timeout(180_000);
  let f: TestFlux;
  const serverSockets: Socket[] = [];

  before(async () => {
    f = await startTestFlux();
    f.flux.server.on('connection', (s) => serverSockets.push(s));
    assert.equal((await f.call('POST', '/products', { key: 'csvbp', name: 'CSV' })).status, 201);
    const product = (await f.call('GET', '/products/csvbp')).body.id as string;
    for (let d = 0; d < DEVICES; d++) {
      assert.equal((await f.call('POST', '/devices', { id: `csvbp_${d}`, product_id: 'csvbp' })).status, 201);
      for (let at = 0; at < ROWS; at += 10_000) {
        const points = Array.from({ length: 10_000 }, (_, i) => ({ device: `csvbp_${d}`, product, metric: 'temperature', ts: T0 + (at + i) * 1000, value: 20 + ((at + i) % 100) / 10 }));
        await f.flux.modules.storage.store.write(points);
      }
    }
  });
  after(() => f?.stop());

  /** Sends the request on a socket that never reads; answers the server's side of it. */
  async function stalledRequest(): Promise<{ client: net.Socket; server: Socket }> {
    const before = serverSockets.length;
    const client = net.connect(Number(new URL(f.base).port), '127.0.0.1');
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    client.pause();
    client.write(`GET /api/reports/telemetry.csv?product=csvbp&from=${T0}&to=${T0 + ROWS * 1000} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\n\r\n`);
    for (let i = 0; serverSockets.length === before; i++) {
      assert.ok(i < 100, 'the server saw the connection');
      await new Promise((r) => setTimeout(r, 20));
    }
    return { client, server: serverSockets[serverSockets.length - 1]! };
  }

  it('does not queue the report in memory for a client that does not read', async () => {
    const { client, server } = await stalledRequest();
    try {
      // time for the server to query every device (about a second each here)
      let last = -1;
      for (let i = 0; i < 60; i++) {
        await new Promise((r) => setTimeout(r, 500));
        if (server.writableLength === last && i > 6) break;
        last = server.writableLength;
      }
      assert.ok(server.writableLength < 4 * 1024 * 1024, `the server queued ${(server.writableLength / 1e6).toFixed(1)} MB for a client that reads nothing`);
    } finally {
      client.destroy();
    }
  });

  it('still sends the whole report to a client that reads', async () => {
    const res = await fetch(`${f.base}/reports/telemetry.csv?product=csvbp&from=${T0}&to=${T0 + ROWS * 1000}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    assert.equal(res.status, 200);
    const lines = (await res.text()).split('\r\n').filter(Boolean);
    assert.equal(lines.length, 1 + DEVICES * ROWS);
    assert.equal(lines[0], 'device_id,time,metric,value');
  });
});
