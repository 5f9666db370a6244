/**
 * `/api/health` answers load balancers without a token, so without one it says only whether FLUX is
 * up. Before the fix it listed every component with its ports, file paths and counts to anyone.
 */
import assert from 'node:assert/strict';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { rawRequest } from '../helpers/raw-http.ts';

describe('security: /api/health discloses details only with the token', function () {
  this.timeout(180_000);
  let flux: FluxProcess;

  before(async () => {
    flux = await startFlux({}, { timeoutMs: 90_000 });
  });
  after(() => flux?.stop());

  it('answers only { status } without a token, or with a wrong one', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer wrong-token-0123456789' }, { authorization: 'Basic YWRtaW46YWRtaW4=' }];
    for (const headers of attempts) {
      const r = await rawRequest(flux.http, 'GET', '/api/health', { headers });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { status: 'ok' });
      assert.ok(!r.text.includes(flux.dataDir), 'no file path');
      assert.ok(!r.text.includes(String(flux.mqtt)), 'no port');
    }
    // A token in the query string does not count either: the route takes no query parameters.
    const q = await rawRequest(flux.http, 'GET', `/api/health?access_token=${encodeURIComponent(flux.token)}`);
    assert.equal(q.status, 400);
    assert.equal(q.body.error.code, 'unknown_parameter');
    assert.ok(!q.text.includes(String(flux.mqtt)) && !q.text.includes(flux.dataDir), 'nothing disclosed');
  });

  it('answers the version, uptime and every component with the bearer token', async () => {
    const r = await flux.api('GET', '/api/health');
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'ok');
    assert.equal(typeof r.body.version, 'string');
    assert.ok(r.body.components.broker, 'the broker component is listed');
    assert.ok(JSON.stringify(r.body).includes(String(flux.mqtt)), 'with its port');
  });
});
