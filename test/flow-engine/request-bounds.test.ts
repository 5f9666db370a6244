/**
 * The bound on flow endpoint requests (runtime/flow-engine/http-endpoints.ts `flowRequestBounds`) on
 * a real express server: requests a flow never answers end with 504 after the timeout, and past the
 * limit of waiting ones a new request is refused at once with 503, until one ends.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { flowRequestBounds } from '../../runtime/flow-engine/http-endpoints.ts';

describe('flow endpoints: requests waiting for their flow are bounded', function () {
  this.timeout(20_000);
  let server: http.Server;
  let url: string;
  let arrived = 0;
  before(async () => {
    const app = express();
    app.use((_req, _res, next) => {
      arrived++;
      next();
    });
    // like an http in node whose flow never reaches an http response node
    app.use('/flows', flowRequestBounds({ timeoutMs: 1500, max: 2 }), (req, res, next) => (req.path === '/quick' ? res.json({ ok: true }) : req.path === '/mute' ? undefined : next()));
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('refuses a third waiting request with 503 flows_busy, and times the waiting ones out with 504', async () => {
    const waiting = [fetch(`${url}/flows/mute`), fetch(`${url}/flows/mute`)];
    // both reached the server before the third one is sent
    while (arrived < 2) await new Promise((r) => setTimeout(r, 10));
    const third = await fetch(`${url}/flows/mute`);
    assert.equal(third.status, 503);
    assert.equal(third.headers.get('retry-after'), '1');
    assert.equal(((await third.json()) as { error: { code: string } }).error.code, 'flows_busy');
    for (const r of await Promise.all(waiting)) {
      assert.equal(r.status, 504);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'flow_timeout');
    }
    // the slots are free again: answered requests do not hold them
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${url}/flows/quick`)).status, 200);
    assert.equal((await fetch(`${url}/flows/missing`)).status, 404);
  });
});
