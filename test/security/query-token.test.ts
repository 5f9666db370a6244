/**
 * `?access_token=` is a credential in a URL (kept in logs and browser history): accepted only where
 * a browser cannot send a header. Before the fix any /api path ending in `/ws` took it
 * (`PATCH /api/devices/ws?access_token=…` → 200) and the CSV report, a download link, refused it.
 */
import assert from 'node:assert/strict';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { rawRequest } from '../helpers/raw-http.ts';

describe('security: the token in the query string', function () {
  this.timeout(180_000);
  let flux: FluxProcess;

  before(async () => {
    flux = await startFlux({}, { timeoutMs: 90_000 });
    assert.equal((await flux.api('POST', '/api/products', { key: 'qt', name: 'QT' })).status, 201);
    assert.equal((await flux.api('POST', '/api/devices', { id: 'ws', product_id: 'qt' })).status, 201);
  });
  after(() => flux?.stop());

  it('is refused on API routes that merely end in /ws, and on every other route', async () => {
    const t = encodeURIComponent(flux.token);
    const attempts: [string, string, string | undefined][] = [
      ['PATCH', `/api/devices/ws?access_token=${t}`, '{"name":"owned"}'],
      ['GET', `/api/devices/ws?access_token=${t}`, undefined],
      ['DELETE', `/api/devices/ws?access_token=${t}`, undefined],
      ['POST', `/api/devices/ws/secret?access_token=${t}`, undefined],
      ['GET', `/api/devices?access_token=${t}`, undefined],
      ['GET', `/api/metrics?access_token=${t}`, undefined],
      ['PUT', `/api/products/ws?access_token=${t}`, '{"name":"x"}'],
    ];
    for (const [method, p, body] of attempts) {
      const r = await rawRequest(flux.http, method, p, { headers: { 'content-type': 'application/json' }, body });
      assert.equal(r.status, 401, `${method} ${p.replace(t, 'TOKEN')} → ${r.status} ${r.text.slice(0, 200)}`);
      assert.equal(r.body.error.code, 'unauthorized');
    }
    const dev = await flux.api('GET', '/api/devices/ws');
    assert.equal(dev.status, 200, 'the device is still there');
    assert.notEqual(dev.body.name, 'owned', 'and was not renamed');
  });

  it('is accepted by the CSV report, so a download link works, and a wrong one is refused', async () => {
    const ok = await rawRequest(flux.http, 'GET', `/api/reports/telemetry.csv?device=ws&access_token=${encodeURIComponent(flux.token)}`);
    assert.equal(ok.status, 200, ok.text.slice(0, 200));
    assert.match(String(ok.headers['content-type']), /text\/csv/);
    assert.match(ok.text, /^device_id,time,metric,value\r\n/);
    const wrong = await rawRequest(flux.http, 'GET', '/api/reports/telemetry.csv?device=ws&access_token=wrong-token-0123456789');
    assert.equal(wrong.status, 401);
  });

  it('is accepted by the live feed, which a browser WebSocket opens without headers', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${flux.http}/api/ws?access_token=${encodeURIComponent(flux.token)}`);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error('the feed refused the query token'));
    });
    ws.close();
    const refused = new WebSocket(`ws://127.0.0.1:${flux.http}/api/ws?access_token=wrong-token-0123456789`);
    await new Promise<void>((resolve, reject) => {
      refused.onopen = () => reject(new Error('a wrong token opened the feed'));
      refused.onerror = () => resolve();
    });
  });
});
