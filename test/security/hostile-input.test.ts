/**
 * Hostile bodies and parameters through the real process: 100,000-deep JSON on REST bodies and on
 * the uplink (HTTP and MQTT), NUL characters in every path and query parameter of every route of
 * the published OpenAPI document, and the documented 256 KiB limit of an HTTP uplink. Before the
 * fix these answered 500 (`RangeError`, `DatabaseError: unrecognized token`) or 202 (900 KiB).
 */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { rawRequest } from '../helpers/raw-http.ts';
import { until } from '../helpers/wait.ts';

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const deepValues = (n: number) => `{"values":{"t":1,"x":${deep(n)}}}`;

describe('security: hostile input answers 4xx and loses nothing', function () {
  this.timeout(180_000);
  let flux: FluxProcess;
  let secret: string;
  const auth = () => ({ authorization: `Bearer ${flux.token}` });

  before(async () => {
    flux = await startFlux({}, { timeoutMs: 90_000 });
    assert.equal((await flux.api('POST', '/api/products', { key: 'hostile', name: 'Hostile' })).status, 201);
    const dev = await flux.api('POST', '/api/devices', { id: 'hostile_1', product_id: 'hostile' });
    assert.equal(dev.status, 201, JSON.stringify(dev.body));
    secret = dev.body.secret;
  });
  after(() => flux?.stop());

  it('answers 400 too_deep, naming the limit, for 100,000-deep JSON on REST bodies', async () => {
    for (const [method, p] of [
      ['POST', '/api/products'],
      ['POST', '/api/devices'],
      ['POST', '/api/rules/test'],
      ['POST', '/api/devices/hostile_1/commands'],
      ['PATCH', '/api/devices/hostile_1'],
    ]) {
      const r = await rawRequest(flux.http, method!, p!, { headers: { ...auth(), 'content-type': 'application/json' }, body: `{"name":${deep(100_000)}}` });
      assert.equal(r.status, 400, `${method} ${p} → ${r.status} ${r.text.slice(0, 200)}`);
      assert.equal(r.body.error.code, 'too_deep');
      assert.match(r.body.error.message, /64/);
    }
    // 64 levels are fine (the limit is inclusive): the route's own validation answers instead.
    const ok = await rawRequest(flux.http, 'POST', '/api/products', { headers: { ...auth(), 'content-type': 'application/json' }, body: `{"key":"deep_ok","name":"n","thing_model":{"x":${deep(62)}}}` });
    assert.notEqual(ok.body?.error?.code, 'too_deep', ok.text.slice(0, 200));
  });

  it('answers 400 too_deep for a 100,000-deep JSON uplink over HTTP, and stores the next good one', async () => {
    const r = await rawRequest(flux.http, 'POST', '/api/devices/hostile_1/uplink', { headers: { 'x-device-secret': secret, 'content-type': 'application/json' }, body: deepValues(100_000) });
    assert.equal(r.status, 400, r.text.slice(0, 200));
    assert.equal(r.body.error.code, 'too_deep');
    assert.match(r.body.error.message, /64/);
    // The same bytes without a JSON content type: the product has no plugin, so they must be JSON; still refused up front.
    const raw = await rawRequest(flux.http, 'POST', '/api/devices/hostile_1/uplink', { headers: { 'x-device-secret': secret, 'content-type': 'application/octet-stream' }, body: deepValues(100_000) });
    assert.equal(raw.status, 400, raw.text.slice(0, 200));
    assert.equal(raw.body.error.code, 'too_deep');
    const good = await rawRequest(flux.http, 'POST', '/api/devices/hostile_1/uplink', { headers: { 'x-device-secret': secret, 'content-type': 'application/json' }, body: '{"values":{"t":41}}' });
    assert.equal(good.status, 202, good.text);
    await until('the good uplink stored', async () => ((await flux.api('GET', '/api/devices/hostile_1/latest')).body?.values?.t === 41 ? true : undefined) ?? undefined);
  });

  it('refuses a 100,000-deep JSON uplink over MQTT with a reason, and keeps working', async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { username: 'hostile_1', password: secret, clientId: 'hostile_1', reconnectPeriod: 0 });
    try {
      await client.publishAsync('/hostile/hostile_1/properties/report', deepValues(100_000), { qos: 1 });
      await client.publishAsync('/hostile/hostile_1/properties/report', '{"values":{"t":42}}', { qos: 1 });
    } finally {
      await client.endAsync();
    }
    await until('the good MQTT uplink stored', async () => ((await flux.api('GET', '/api/devices/hostile_1/latest')).body?.values?.t === 42 ? true : undefined) ?? undefined);
    // The refused one has a decode span that names the limit.
    const traces = (await flux.api('GET', '/api/devices/hostile_1/trace?last=10')).body.items as { spans: { stage: string; ok: boolean; error?: string }[] }[];
    const refused = traces.flatMap((t) => t.spans).find((s) => s.stage === 'decode' && !s.ok);
    assert.ok(refused, `a failed decode span is in the trace: ${JSON.stringify(traces).slice(0, 600)}`);
    assert.match(refused.error ?? '', /nested more than 64 levels/);
    assert.doesNotMatch(flux.output(), /RangeError|Maximum call stack/);
    assert.equal((await flux.api('GET', '/api/health')).status, 200);
  });

  it('enforces the documented 256 KiB limit of an HTTP uplink', async () => {
    const big = `{"values":{"t":1},"pad":"${'x'.repeat(900 * 1024)}"}`;
    const r = await rawRequest(flux.http, 'POST', '/api/devices/hostile_1/uplink', { headers: { 'x-device-secret': secret, 'content-type': 'application/json' }, body: big });
    assert.equal(r.status, 413, r.text.slice(0, 200));
    assert.equal(r.body.error.code, 'too_large');
    const justOver = `{"values":{"t":1},"pad":"${'x'.repeat(256 * 1024)}"}`;
    assert.equal((await rawRequest(flux.http, 'POST', '/api/devices/hostile_1/uplink', { headers: { 'x-device-secret': secret, 'content-type': 'application/octet-stream' }, body: justOver })).status, 413);
    const under = `{"values":{"t":43},"pad":"${'x'.repeat(200 * 1024)}"}`;
    assert.equal((await rawRequest(flux.http, 'POST', '/api/devices/hostile_1/uplink', { headers: { 'x-device-secret': secret, 'content-type': 'application/json' }, body: under })).status, 202);
  });

  it('answers 400 for a NUL in any path or query parameter of every route, never 500', async () => {
    const doc = (await flux.api('GET', '/api/openapi.json')).body as { paths: Record<string, Record<string, { parameters?: { name: string; in: string }[] }>> };
    const failures: string[] = [];
    let tried = 0;
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const params = op.parameters ?? [];
        const pathNames = params.filter((x) => x.in === 'path').map((x) => x.name);
        const queryNames = params.filter((x) => x.in === 'query').map((x) => x.name);
        const fill = (nulIn?: string) => p.replace(/\{([A-Za-z_]+)\}/g, (_m, name: string) => (name === nulIn ? 'hostile_1%00x' : name === 'id' && p.startsWith('/api/devices') ? 'hostile_1' : 'x'));
        const cases: string[] = pathNames.map((n) => fill(n));
        for (const qn of queryNames) cases.push(`${fill()}?${qn}=a%00b`);
        const body = method === 'get' || method === 'delete' ? undefined : '{}';
        for (const target of cases) {
          tried++;
          const r = await rawRequest(flux.http, method.toUpperCase(), target, { headers: { ...auth(), 'content-type': 'application/json' }, body });
          if (r.status !== 400) failures.push(`${method.toUpperCase()} ${target} → ${r.status} ${r.text.slice(0, 120)}`);
        }
      }
    }
    assert.ok(tried > 40, `every route was tried (${tried} requests)`);
    assert.deepEqual(failures, [], `routes that did not answer 400:\n${failures.join('\n')}`);
    assert.doesNotMatch(flux.output(), /unrecognized token/);
  });

  it('answers 400 for a NUL inside a JSON body string', async () => {
    const r = await flux.api('POST', '/api/products', { key: 'nul_body', name: 'a\u0000b' });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'nul_character');
    assert.equal((await flux.api('GET', '/api/products/nul_body')).status, 404);
  });
});
