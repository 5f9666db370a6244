/** The real `flux` process as a user runs it: ready line, health, editor auth, flows' http endpoints, restart, config errors. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startFlux, tempDir, ROOT, type FluxProcess } from '../helpers/flux-process.ts';

/** Runs the CLI expecting it to fail at start; answers exit code and output. */
function failingStart(env: Record<string, string>): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'runtime', 'cli.ts')], {
    env: { ...process.env, FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_DATA_DIR: tempDir(), FLUX_LOG_LEVEL: 'warn', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('the flux process', function () {
  this.timeout(60_000);
  let flux: FluxProcess;

  before(async function () {
    flux = await startFlux();
  });

  after(async function () {
    await flux?.stop();
  });

  it('prints one ready line with the real ports when started with port 0', function () {
    const lines = flux.output().split('\n').filter((l) => l.startsWith('flux ready'));
    assert.equal(lines.length, 1);
    assert.ok(flux.http > 0 && flux.mqtt > 0);
  });

  it('answers /api/health 200 with every component up', async function () {
    assert.deepEqual(await (await fetch(`${flux.url}/api/health`)).json(), { status: 'ok' }, 'without a token: the status only');
    const res = await fetch(`${flux.url}/api/health`, { headers: { authorization: `Bearer ${flux.token}` } });
    assert.equal(res.status, 200);
    const body = await res.json();
    for (const c of ['metadata_db', 'broker', 'flows']) assert.equal(body.components[c]?.ok, true, `${c} is up`);
  });

  it('serves the editor page, and its admin API only to a token holder', async function () {
    const page = await fetch(`${flux.url}/editor/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>FLUX IOT · flows<\/title>/);
    assert.equal((await fetch(`${flux.url}/editor/flows`)).status, 401);
    assert.equal((await fetch(`${flux.url}/editor/flows`, { headers: { authorization: 'Bearer wrong-token-xxxxxxxx' } })).status, 401);
    const ok = await fetch(`${flux.url}/editor/flows`, { headers: { authorization: `Bearer ${flux.token}` } });
    assert.equal(ok.status, 200);
  });

  it("accepts the token at the editor's login form and refuses a wrong one", async function () {
    const login = (password: string) =>
      fetch(`${flux.url}/editor/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_id: 'node-red-editor', grant_type: 'password', scope: '*', username: 'admin', password }),
      });
    const good = await login(flux.token);
    assert.equal(good.status, 200);
    const { access_token } = await good.json();
    assert.ok(access_token);
    assert.equal((await fetch(`${flux.url}/editor/flows`, { headers: { authorization: `Bearer ${access_token}` } })).status, 200);
    assert.notEqual((await login('not-the-token-at-all')).status, 200);
  });

  it("shows FLUX's own node types in the palette", async function () {
    const res = await fetch(`${flux.url}/editor/nodes`, { headers: { authorization: `Bearer ${flux.token}`, accept: 'application/json' } });
    const sets = (await res.json()) as { id: string; types: string[]; err?: string }[];
    const ours = sets.filter((s) => s.id.startsWith('@flux-iot/nodes/'));
    assert.ok(ours.some((s) => s.types.includes('flux device in')), 'flux device in is registered');
    for (const s of ours) assert.equal(s.err, undefined, `${s.id} loaded without error`);
  });

  it("serves a flow's `http in` endpoint from / after the flow is deployed", async function () {
    const flows = [
      { id: 't1', type: 'tab', label: 'test' },
      { id: 'h1', z: 't1', type: 'http in', url: '/hello', method: 'get', wires: [['f1']] },
      { id: 'f1', z: 't1', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '{"hello":"flux"}', tot: 'json' }], wires: [['r1']] },
      { id: 'r1', z: 't1', type: 'http response', statusCode: '', headers: {}, wires: [] },
    ];
    const deploy = await fetch(`${flux.url}/editor/flows`, {
      method: 'POST',
      headers: { authorization: `Bearer ${flux.token}`, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(flows),
    });
    assert.equal(deploy.status, 204);
    let body: unknown;
    for (let i = 0; i < 50; i++) {
      const res = await fetch(`${flux.url}/flows/hello`);
      if (res.status === 200) {
        body = await res.json();
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(body, { hello: 'flux' });
  });

  it('keeps products, devices and flows across a restart, and shuts down within 5 s', async function () {
    const p = await flux.api('POST', '/api/products', { key: 'keep', name: 'Kept' });
    assert.equal(p.status, 201);
    const d = await flux.api('POST', '/api/devices', { id: 'keep_1', product_id: 'keep' });
    assert.equal(d.status, 201);
    const t0 = Date.now();
    const code = await flux.stop();
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
    flux = await startFlux({}, { dataDir: flux.dataDir });
    assert.equal((await flux.api('GET', '/api/products/keep')).body.name, 'Kept');
    assert.equal((await flux.api('GET', '/api/devices/keep_1')).body.product_id, p.body.id);
    const flows = await fetch(`${flux.url}/editor/flows`, { headers: { authorization: `Bearer ${flux.token}` } });
    assert.ok(((await flows.json()) as { id: string }[]).some((n) => n.id === 'h1'), 'the deployed flow is still there');
  });
});

describe('flux configuration errors', function () {
  this.timeout(60_000);

  it('generates an admin token on first start, prints it once, and reuses it', async function () {
    const dataDir = tempDir();
    const first = await startFlux({ FLUX_ADMIN_TOKEN: '' }, { dataDir });
    const m = /admin token \(saved in .*admin-token, shown once\): (\S+)/.exec(first.output());
    assert.ok(m, 'the generated token is printed');
    const token = m[1]!;
    assert.equal((await fetch(`${first.url}/api/products`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    await first.stop();
    const second = await startFlux({ FLUX_ADMIN_TOKEN: '' }, { dataDir });
    assert.doesNotMatch(second.output(), /admin token/);
    assert.equal((await fetch(`${second.url}/api/products`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
    await second.stop();
  });

  it('names FLUX_MQTT_PORT when the MQTT port is in use', async function () {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    const { code, out } = failingStart({ FLUX_MQTT_PORT: String(port) });
    blocker.close();
    assert.notEqual(code, 0);
    assert.match(out, new RegExp(`MQTT port ${port} is in use; set FLUX_MQTT_PORT`));
  });

  it('names FLUX_HTTP_PORT when the HTTP port is in use', async function () {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    const { code, out } = failingStart({ FLUX_HTTP_PORT: String(port) });
    blocker.close();
    assert.notEqual(code, 0);
    assert.match(out, new RegExp(`HTTP port ${port} is in use; set FLUX_HTTP_PORT`));
  });

  it('names FLUX_DATA_DIR when the data dir is not writable', function () {
    const file = path.join(tempDir(), 'a-file');
    fs.writeFileSync(file, '');
    const { code, out } = failingStart({ FLUX_DATA_DIR: path.join(file, 'data') });
    assert.notEqual(code, 0);
    assert.match(out, /FLUX_DATA_DIR=.* is not a writable directory/);
  });

  it('names the variable of an unparsable port, DB URL or unknown scheme in one line', function () {
    for (const [env, re] of [
      [{ FLUX_HTTP_PORT: 'eighty' }, /FLUX_HTTP_PORT="eighty" is not a port number/],
      [{ FLUX_DB_URL: 'mysql://' }, /FLUX_DB_URL/],
      [{ FLUX_DB_URL: 'oracle://db/x' }, /FLUX_DB_URL: unsupported scheme 'oracle:'/],
      [{ FLUX_TS_URL: 'not a url' }, /FLUX_TS_URL/],
    ] as const) {
      const { code, out } = failingStart(env as Record<string, string>);
      assert.notEqual(code, 0);
      assert.match(out, re);
      assert.equal(out.trim().split('\n').length, 1, `one line, got:\n${out}`);
    }
  });

  it('names FLUX_DB_URL when the database cannot be reached', function () {
    const { code, out } = failingStart({ FLUX_DB_URL: 'mysql://root@127.0.0.1:1/flux' });
    assert.notEqual(code, 0);
    assert.match(out, /FLUX_DB_URL: cannot open the mysql database mysql:\/\/root@127\.0\.0\.1:1\/flux: ECONNREFUSED/);
  });
});
