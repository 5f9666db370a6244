/**
 * GET /api/openapi.json needs no token. Each request built the document anew from the route table
 * (a JSON Schema per route: 15–60 ms of the main thread, which also serves MQTT and the pipeline),
 * so about 75 unauthenticated requests a second kept that thread busy and every other answer
 * waited (/api/health went from 3 ms to 70–200 ms). The table does not change once mounted: the
 * document is built once.
 */
import assert from 'node:assert/strict';
import { startInstance, type Instance } from './helpers.ts';

describe('security: the public OpenAPI document costs its build once', function () {
  this.timeout(60_000);
  let flux: Instance;

  before(async () => {
    flux = await startInstance();
  });
  after(() => flux?.stop());

  it('builds the document at most once for many requests, and answers the same document each time', async () => {
    const { routes } = flux.flux.api;
    const build = routes.openapi.bind(routes);
    let builds = 0;
    routes.openapi = (info) => {
      builds++;
      return build(info);
    };
    const answers: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`http://127.0.0.1:${flux.http}/api/openapi.json`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      answers.push(await res.text());
    }
    assert.ok(builds <= 1, `built ${builds} times for 20 requests`);
    assert.equal(new Set(answers).size, 1);
    const doc = JSON.parse(answers[0]!) as { openapi: string; paths: Record<string, unknown> };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths['/api/devices/{id}/uplink'], 'the document lists the routes');
  });
});
