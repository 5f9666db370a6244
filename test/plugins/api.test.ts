/** /api/plugins through the real FLUX process: install, validation answers, versions, rollback, try-before-deploy. */
import assert from 'node:assert/strict';
import { startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';
import { echo } from './fixtures.ts';

const wasmHeaders = { 'content-type': 'application/wasm' };

describe('plugins API', function () {
  this.timeout(30_000);
  let flux: FluxProcess;
  before(async () => {
    flux = await startFlux({ FLUX_PLUGINS_DIR: tempDir('flux-plugins-dir-') });
  });
  after(() => flux?.stop());

  it('installs a module with PUT application/wasm, then answers 200 for the same bytes and 201 for a new version', async () => {
    const first = await flux.api('PUT', '/api/plugins/echo', echo(1), wasmHeaders);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal(first.body.version, 1);
    assert.match(first.body.sha256, /^[0-9a-f]{64}$/);
    assert.equal((await flux.api('PUT', '/api/plugins/echo', echo(1), wasmHeaders)).status, 200);
    const second = await flux.api('PUT', '/api/plugins/echo?deadline_ms=80', echo(2), wasmHeaders);
    assert.equal(second.status, 201);
    assert.deepEqual(second.body.meta.limits, { deadline_ms: 80, memory_mib: 64 });
    const one = await flux.api('GET', '/api/plugins/echo');
    assert.equal(one.body.active_version, 2);
    assert.deepEqual(one.body.versions.map((v: any) => v.version), [1, 2]);
    const list = await flux.api('GET', '/api/plugins');
    assert.ok(list.body.items.some((p: any) => p.id === 'echo'));
  });

  it('answers 400 naming the problem for bad uploads', async () => {
    const cases: [Buffer, Record<string, string>, string, RegExp][] = [
      [Buffer.from('hello'), wasmHeaders, 'not_wasm', /\\0asm/],
      [echo(1, { omit: 'decode' }), wasmHeaders, 'missing_export', /'decode'/],
      [echo(1, { abi: 7 }), wasmHeaders, 'wrong_abi_version', /returned 7/],
      [echo(1, { extraImport: '(import "env" "system" (func))' }), wasmHeaders, 'forbidden_import', /env\.system/],
      [echo(1), { 'content-type': 'text/plain' }, 'bad_request', /application\/wasm/],
    ];
    for (const [bytes, headers, code, re] of cases) {
      const r = await flux.api('PUT', '/api/plugins/bad', bytes, headers);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.code, code);
      assert.match(r.body.error.message, re);
    }
    assert.equal((await flux.api('GET', '/api/plugins/bad')).status, 404);
    assert.equal((await flux.api('PUT', '/api/plugins/bad%20id', echo(1), wasmHeaders)).status, 400);
  });

  it('tries decode and encode on the active version and on a candidate, without installing it', async () => {
    const d = await flux.api('POST', '/api/plugins/echo/decode', { hex: '4731 32' });
    assert.equal(d.status, 200);
    assert.deepEqual(d.body.output, { device_id: 'd', values: { v: 2, seq: 12 } });
    assert.deepEqual(d.body.logs, ['hello from the plugin']);
    assert.equal(d.body.plugin.version, 2);
    assert.equal(typeof d.body.time_ms, 'number');
    const c = await flux.api('POST', '/api/plugins/echo/decode', { base64: Buffer.from('5').toString('base64'), wasm_base64: echo(3).toString('base64') });
    assert.deepEqual(c.body.output, { device_id: 'd', values: { v: 3, seq: 5 } });
    assert.equal(c.body.plugin.version, 'candidate');
    assert.equal((await flux.api('GET', '/api/plugins/echo')).body.versions.length, 2, 'the candidate was not installed');
    const bad = await flux.api('POST', '/api/plugins/echo/decode', { hex: '54' });
    assert.equal(bad.status, 200);
    assert.equal(bad.body.ok, false);
    assert.equal(bad.body.error.cause, 'trap');
    assert.match(bad.body.error.message, /^plugin 'echo'@2: trap: /);
    const e = await flux.api('POST', '/api/plugins/echo/encode', { command: 'on', params: { x: 1 } });
    assert.equal(Buffer.from(e.body.output.hex, 'hex').toString(), '{"command":"on","params":{"x":1}}');
    assert.equal((await flux.api('POST', '/api/plugins/echo/decode', { hex: 'abc' })).status, 400);
    assert.equal((await flux.api('POST', '/api/plugins/echo/decode', { hex: '00', base64: 'AA==' })).status, 400);
    assert.equal((await flux.api('POST', '/api/plugins/nope/decode', { hex: '00' })).status, 404);
    const refused = await flux.api('POST', '/api/plugins/echo/decode', { hex: '00', wasm_base64: Buffer.from('nope').toString('base64') });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, 'not_wasm');
  });

  it('rolls back to the previous version, then refuses at the first, and deletes', async () => {
    const r = await flux.api('POST', '/api/plugins/echo/rollback');
    assert.equal(r.status, 200);
    assert.equal(r.body.version, 1);
    assert.equal((await flux.api('POST', '/api/plugins/echo/decode', { hex: '31' })).body.output.values.v, 1);
    const again = await flux.api('POST', '/api/plugins/echo/rollback');
    assert.equal(again.status, 409);
    assert.match(again.body.error.message, /first version/);
    assert.equal((await flux.api('DELETE', '/api/plugins/echo')).status, 204);
    assert.equal((await flux.api('GET', '/api/plugins/echo')).status, 404);
  });

  it('documents the plugin routes in the OpenAPI document', async () => {
    const doc = (await flux.api('GET', '/api/openapi.json')).body;
    assert.ok(doc.paths['/api/plugins/{id}'].put.requestBody.content['application/wasm']);
    assert.ok(doc.paths['/api/plugins/{id}/decode'].post);
    assert.ok(doc.paths['/api/plugins/{id}/rollback'].post);
  });
});
