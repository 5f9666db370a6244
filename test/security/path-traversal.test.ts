/**
 * Plugin ids that try to leave the plugin store, through the real process: the REST API, the
 * editor's upload endpoint and the plugins folder watcher. Paths are sent as-is (like
 * `curl --path-as-is`). Before the fix, `PUT /api/plugins/%2E%2E` wrote `<data>/1.wasm` and
 * `DELETE /api/plugins/%2E%2E` removed the whole data dir.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';
import { rawRequest } from '../helpers/raw-http.ts';
import { until } from '../helpers/wait.ts';

const wasm = fs.readFileSync(path.join(ROOT, 'plugins', 'dist', 'modbus.wasm'));

/** Path segments as sent on the wire, and what they stand for. */
const HOSTILE_IDS: [string, string][] = [
  ['.', 'dot'],
  ['..', 'dot-dot'],
  ['%2E', 'encoded dot'],
  ['%2E%2E', 'encoded dot-dot'],
  ['%2e%2e', 'encoded dot-dot, lower case'],
  ['.%2E', 'half-encoded dot-dot'],
  ['..%2F..', 'encoded slash'],
  ['%2E%2E%2F%2E%2E%2Fetc', 'encoded dot-dot-slash'],
  ['..%5C..', 'encoded backslash'],
  ['a%2Fb', 'slash inside'],
  ['%5Ckeep', 'leading backslash'],
  ['%00', 'NUL'],
  ['keep%00', 'NUL after a real id'],
  ['a'.repeat(65), '65 characters'],
  ['a'.repeat(4000), '4000 characters'],
  ['%EF%BC%8E%EF%BC%8E', 'fullwidth dot-dot'],
  ['%EF%BC%A1%EF%BC%A2', 'fullwidth AB'],
  ['KEEP', 'upper-case twin of a real id'],
  ['.keep', 'hidden name'],
  ['keep.wasm', 'with an extension'],
  ['-x', 'leading dash'],
  ['%20', 'space'],
];

describe('security: plugin ids cannot leave the plugin store', function () {
  this.timeout(180_000);
  let flux: FluxProcess;
  let pluginsDir: string;
  const auth = () => ({ authorization: `Bearer ${flux.token}` });

  /** Every file of the data dir that matters, and the plugins the API knows. */
  function assertIntact(after: string): void {
    for (const f of ['flux.db', 'telemetry.db', path.join('node-red', 'flows.json'), path.join('plugins', 'keep', '1.wasm'), path.join('plugins', 'modbus', '1.wasm')]) {
      assert.ok(fs.existsSync(path.join(flux.dataDir, f)), `${f} is still in the data dir after ${after}`);
    }
    assert.ok(fs.existsSync(path.join(pluginsDir, 'modbus.wasm')), `the plugins folder is intact after ${after}`);
    const wasmFiles: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.wasm')) wasmFiles.push(path.relative(flux.dataDir, p));
      }
    };
    walk(flux.dataDir);
    assert.deepEqual(wasmFiles.sort(), [path.join('plugins', 'keep', '1.wasm'), path.join('plugins', 'modbus', '1.wasm')], `no module was written elsewhere after ${after}`);
  }

  async function assertPluginsListed(after: string): Promise<void> {
    const list = await flux.api('GET', '/api/plugins');
    assert.equal(list.status, 200, `the API answers after ${after}`);
    assert.deepEqual(list.body.items.map((p: { id: string }) => p.id).sort(), ['keep', 'modbus'], `exactly the two plugins remain after ${after}`);
  }

  before(async () => {
    pluginsDir = tempDir('flux-sec-plugins-');
    fs.copyFileSync(path.join(ROOT, 'plugins', 'dist', 'modbus.wasm'), path.join(pluginsDir, 'modbus.wasm'));
    flux = await startFlux({ FLUX_PLUGINS_DIR: pluginsDir }, { timeoutMs: 90_000 });
    const put = await flux.api('PUT', '/api/plugins/keep', wasm, { 'content-type': 'application/wasm' });
    assert.equal(put.status, 201, JSON.stringify(put.body));
    assertIntact('setup');
  });
  after(() => flux?.stop());

  for (const [id, what] of HOSTILE_IDS) {
    it(`answers 400 invalid_id on every plugin route for ${what} (${id.slice(0, 24)}${id.length > 24 ? '…' : ''})`, async () => {
      const attempts: [string, string, Record<string, string>, Buffer | string | undefined][] = [
        ['PUT', `/api/plugins/${id}`, { 'content-type': 'application/wasm' }, wasm],
        ['PUT', `/editor/flux-plugins/${id}`, { 'content-type': 'application/wasm' }, wasm],
        ['DELETE', `/api/plugins/${id}`, {}, undefined],
        ['GET', `/api/plugins/${id}`, {}, undefined],
        ['PATCH', `/api/plugins/${id}`, { 'content-type': 'application/json' }, '{"deadline_ms":10}'],
        ['POST', `/api/plugins/${id}/rollback`, {}, undefined],
        ['POST', `/api/plugins/${id}/decode`, { 'content-type': 'application/json' }, '{"hex":"00"}'],
        ['POST', `/api/plugins/${id}/encode`, { 'content-type': 'application/json' }, '{"command":"x"}'],
      ];
      for (const [method, p, headers, body] of attempts) {
        const r = await rawRequest(flux.http, method, p, { headers: { ...auth(), ...headers }, body });
        assert.equal(r.status, 400, `${method} ${p.slice(0, 60)} → ${r.status} ${r.text.slice(0, 200)}`);
        assert.equal(r.body?.error?.code, 'invalid_id', `${method} ${p.slice(0, 60)}: ${r.text.slice(0, 200)}`);
        assert.match(r.body.error.message, /^plugin id /);
        assert.ok(r.body.error.message.length < 400, 'the message does not echo a huge id');
      }
      assertIntact(`${what}`);
      await assertPluginsListed(what);
    });
  }

  it('refuses the hostile ids as a product protocol_plugin_id too', async () => {
    for (const bad of ['..', '.', 'a/b', 'a\0b', 'ＡＢ']) {
      const r = await flux.api('POST', '/api/products', { key: 'sec_prod', name: 'p', protocol_plugin_id: bad });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'invalid_id');
    }
  });

  it('multi-segment paths with dot-dot do not reach a plugin route or the disk', async () => {
    for (const p of ['/api/plugins/../..', '/api/plugins/../../plugins', '/api/plugins/./', '/editor/flux-plugins/../..']) {
      for (const method of ['PUT', 'DELETE']) {
        const r = await rawRequest(flux.http, method, p, { headers: { ...auth(), 'content-type': 'application/wasm' }, body: method === 'PUT' ? wasm : undefined });
        assert.ok(r.status >= 400 && r.status < 500, `${method} ${p} → ${r.status}`);
      }
    }
    assertIntact('multi-segment paths');
    await assertPluginsListed('multi-segment paths');
  });

  it('ignores files in the plugins folder whose names are not slugs', async () => {
    for (const name of ['..wasm', '...wasm', '.wasm', 'Ｍodbus.wasm', 'UPPER.wasm', 'a.b.wasm']) fs.writeFileSync(path.join(pluginsDir, name), wasm);
    await until('the watcher to ignore the six files', () => ((flux.output().match(/ignored: a plugin file name/g)?.length ?? 0) >= 6 ? true : undefined), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    assertIntact('hostile plugin file names');
    await assertPluginsListed('hostile plugin file names');
  });

  it('still installs, reads and deletes a plugin with a good id', async () => {
    assert.equal((await rawRequest(flux.http, 'PUT', '/api/plugins/ok_id-2', { headers: { ...auth(), 'content-type': 'application/wasm' }, body: wasm })).status, 201);
    assert.ok(fs.existsSync(path.join(flux.dataDir, 'plugins', 'ok_id-2', '1.wasm')));
    assert.equal((await rawRequest(flux.http, 'DELETE', '/api/plugins/ok_id-2', { headers: auth() })).status, 204);
    assert.ok(!fs.existsSync(path.join(flux.dataDir, 'plugins', 'ok_id-2')));
    assertIntact('a good install and delete');
  });
});
