/**
 * Flow endpoints on the real `flux` process: served under /flows, each http in node with its auth
 * choice (public, device id + secret, token), a deploy naming a path under /api, /editor, /console
 * or /mqtt refused with the node and path, the deployed endpoints listed at GET
 * /api/flows/openapi.json, a request no flow answers ended with 504, and the README's curl call of
 * flows/examples/http-latest-values.json.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { startFlux, ROOT, type FluxProcess } from '../helpers/flux-process.ts';
import { refusals } from '../../runtime/flow-engine/index.ts';

const run = promisify(execFile);

describe('flow endpoints: prefix, auth, reserved paths, OpenAPI listing', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let secret: string;
  const editor = (flows: unknown[]) =>
    fetch(`${flux.url}/editor/flows`, { method: 'POST', headers: { authorization: `Bearer ${flux.token}`, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' }, body: JSON.stringify(flows) });
  const respond = (id: string, payload: string) => [
    { id: `${id}-fn`, z: 'ep', type: 'function', func: `msg.payload = { hello: ${payload} }; return msg;`, outputs: 1, wires: [[`${id}-out`]] },
    { id: `${id}-out`, z: 'ep', type: 'http response', statusCode: '', headers: {}, wires: [] },
  ];
  const flows = [
    { id: 'ep', type: 'tab', label: 'endpoints' },
    { id: 'pub', z: 'ep', type: 'http in', name: 'hello', url: '/hello', method: 'get', wires: [['pub-fn']] },
    ...respond('pub', '"world"'),
    { id: 'dev', z: 'ep', type: 'http in', name: 'device report', url: '/report/:kind', method: 'post', auth: 'device', wires: [['dev-fn']] },
    ...respond('dev', 'msg.req.fluxDevice.id + "/" + msg.req.params.kind'),
    { id: 'tok', z: 'ep', type: 'http in', name: 'admin only', url: '/admin', method: 'get', auth: 'token', role: 'admin', wires: [['tok-fn']] },
    ...respond('tok', '"admin"'),
    // a flow that never answers: the request must not stay open for ever
    { id: 'mute', z: 'ep', type: 'http in', name: 'no answer', url: '/mute', method: 'get', wires: [[]] },
  ];

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn', FLUX_FLOWS_HTTP_TIMEOUT_MS: '1500' });
    await flux.api('POST', '/api/products', { key: 'thermo', name: 'Thermo' });
    secret = (await flux.api('POST', '/api/devices', { id: 'thermo_1', product_id: 'thermo' })).body.secret;
    assert.equal((await editor(flows)).status, 204);
    for (let i = 0; i < 100 && (await fetch(`${flux.url}/flows/hello`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 50));
  });
  after(async () => {
    await flux?.stop();
  });

  it('serves flow endpoints under /flows, not at the root', async () => {
    const r = await fetch(`${flux.url}/flows/hello`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { hello: 'world' });
    assert.equal((await fetch(`${flux.url}/hello`)).status, 404);
  });

  it('a device endpoint takes a device id and secret (headers or Basic), and tells the flow who it is', async () => {
    const url = `${flux.url}/flows/report/door`;
    assert.equal((await fetch(url, { method: 'POST' })).status, 401);
    assert.equal((await fetch(url, { method: 'POST', headers: { 'x-device-id': 'thermo_1', 'x-device-secret': 'wrong-secret-0123456789' } })).status, 401);
    const ok = await fetch(url, { method: 'POST', headers: { 'x-device-id': 'thermo_1', 'x-device-secret': secret } });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { hello: 'thermo_1/door' });
    const basic = await fetch(url, { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`thermo_1:${secret}`).toString('base64')}` } });
    assert.equal(basic.status, 200);
    assert.equal((await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${flux.token}` } })).status, 401, 'the admin token is not a device');
  });

  it('a token endpoint takes the token', async () => {
    const url = `${flux.url}/flows/admin`;
    const none = await fetch(url);
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'unauthorized');
    assert.equal((await fetch(url, { headers: { authorization: 'Bearer not-the-token' } })).status, 401);
    assert.equal((await fetch(url, { headers: { authorization: `Bearer ${flux.token}` } })).status, 200);
  });

  it('answers 504 flow_timeout for a request its flow never answers', async () => {
    const r = await fetch(`${flux.url}/flows/mute`);
    assert.equal(r.status, 504);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'flow_timeout');
    assert.equal((await fetch(`${flux.url}/flows/hello`)).status, 200, 'the others still answer');
  });

  it('refuses a deploy with a path under /api, /editor, /console or /mqtt, naming node and path; the running flows stay', async () => {
    for (const url of ['/api/custom', '/editor/custom', '/console', '/mqtt/x']) {
      const bad = await editor([...flows, { id: 'bad', z: 'ep', type: 'http in', name: 'sneaky', url, method: 'get', wires: [[]] }]);
      assert.equal(bad.status, 400, url);
      const body = (await bad.json()) as { message: string; error: { code: string } };
      assert.equal(body.error.code, 'flow_path_reserved');
      assert.match(body.message, new RegExp(`http in node 'sneaky' \\(GET ${url.replace(/\//g, '\\/')}\\)`));
    }
    const badAuth = await editor([...flows, { id: 'bad2', z: 'ep', type: 'http in', name: 'odd', url: '/odd', method: 'get', auth: 'maybe', wires: [[]] }]);
    assert.equal(badAuth.status, 400);
    assert.match(((await badAuth.json()) as { message: string }).message, /auth 'maybe' is not one of public, device, token/);
    // Node-RED's admin API for one flow (add, replace) is checked the same way
    const oneFlow = { id: 'ep2', label: 'more', nodes: [{ id: 'bad3', type: 'http in', name: 'one', url: '/api/one', method: 'get', wires: [[]] }] };
    const headers = { authorization: `Bearer ${flux.token}`, 'content-type': 'application/json' };
    const added = await fetch(`${flux.url}/editor/flow`, { method: 'POST', headers, body: JSON.stringify(oneFlow) });
    assert.equal(added.status, 400);
    assert.match(((await added.json()) as { message: string }).message, /http in node 'one' \(GET \/api\/one\)/);
    const replaced = await fetch(`${flux.url}/editor/flow/ep`, { method: 'PUT', headers, body: JSON.stringify({ ...oneFlow, id: 'ep' }) });
    assert.equal(replaced.status, 400);
    assert.equal((await fetch(`${flux.url}/flows/hello`)).status, 200);
    // with the root as prefix, the same paths would shadow FLUX's own
    assert.match(refusals([{ type: 'http in', id: 'n', url: '/api/x', method: 'get' }], '/')[0]!, /under \/api/);
    assert.deepEqual(refusals([{ type: 'http in', id: 'n', url: '/apiary', method: 'get' }], '/'), []);
  });

  it('lists the deployed endpoints with method, path and auth at GET /api/flows/openapi.json', async () => {
    const r = await flux.api('GET', '/api/flows/openapi.json');
    assert.equal(r.status, 200);
    const paths = r.body.paths;
    assert.equal(paths['/flows/hello'].get['x-flux-auth'], 'public');
    assert.equal(paths['/flows/report/{kind}'].post['x-flux-auth'], 'device');
    assert.deepEqual(paths['/flows/report/{kind}'].post.parameters, [{ name: 'kind', in: 'path', required: true, schema: { type: 'string' } }]);
    assert.equal(paths['/flows/admin'].get['x-flux-auth'], 'token');
    assert.equal(paths['/flows/admin'].get['x-flux-role'], 'admin');
    assert.deepEqual(paths['/flows/admin'].get.security, [{ bearer: [] }]);
    assert.equal((await fetch(`${flux.url}/api/flows/openapi.json`)).status, 401);
  });

  it("the README's example: flows/examples/http-latest-values.json called with curl", async () => {
    const example = JSON.parse(fs.readFileSync(path.join(ROOT, 'flows', 'examples', 'http-latest-values.json'), 'utf8'));
    assert.equal((await editor([...flows, ...example])).status, 204);
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const line = /^curl -s -H "Authorization: Bearer \$TOKEN" (\S+\/flows\/devices\/sensor_1\/latest-values)$/m.exec(readme);
    assert.ok(line, 'README shows the curl call');
    await flux.api('POST', '/api/devices', { id: 'sensor_1', product_id: 'thermo' });
    let out = '';
    for (let i = 0; i < 50 && !out.includes('"device_id":"sensor_1"'); i++) {
      out = (await run('curl', ['-s', '-H', `Authorization: Bearer ${flux.token}`, line[1]!.replace('http://localhost:1880', flux.url)])).stdout;
      if (!out.includes('"device_id":"sensor_1"')) await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(out, /"device_id":"sensor_1"/);
    assert.match((await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', line[1]!.replace('http://localhost:1880', flux.url)])).stdout, /^401$/);
  });
});
