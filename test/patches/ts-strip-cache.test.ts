/**
 * runtime/patches/ts-strip-cache.js: FLUX's sources type-stripped once and kept in a folder private
 * to the user, read back on later starts, by the main thread and by worker threads.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { entryName, privateCacheDir, strippedSource, warmTsStripCache } from '../../runtime/patches/ts-strip-cache.js';
import { execFileSync } from 'node:child_process';
import { ROOT, startFlux, tempDir } from '../helpers/flux-process.ts';
import { echo } from '../plugins/fixtures.ts';

const SOURCE = 'export function add(a: number, b: number): number {\n  return a + b; // → sum\n}\nthrow new Error("line 4");\n';

describe('ts-strip-cache: type-stripped sources kept on disk', function () {
  this.timeout(60_000);
  const made: string[] = [];
  const folder = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-ts-cache-test-'));
    made.push(dir);
    return dir;
  };
  after(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('strips as Node does, keeping every position, and reads the entry back instead of stripping again', () => {
    const dir = folder();
    const js = strippedSource(SOURCE, dir);
    assert.equal(js, stripTypeScriptTypes(SOURCE, { mode: 'strip' }));
    assert.equal(js.length, SOURCE.length);
    assert.equal(js.indexOf('throw'), SOURCE.indexOf('throw'));
    const entry = path.join(dir, entryName(SOURCE));
    assert.equal(fs.readFileSync(entry, 'utf8'), js);
    assert.equal(fs.statSync(entry).mode & 0o777, 0o600);
    // the second call answers what the folder holds: proof it did not strip again
    fs.writeFileSync(entry, '/* from the folder */');
    assert.equal(strippedSource(SOURCE, dir), '/* from the folder */');
    assert.equal(fs.readdirSync(dir).length, 1, 'no partial files left behind');
  });

  it('strips in memory when there is no folder', () => {
    assert.equal(strippedSource(SOURCE, null), stripTypeScriptTypes(SOURCE, { mode: 'strip' }));
  });

  it('uses only a directory private to this user', () => {
    const fresh = path.join(folder(), 'made', 'here');
    assert.deepEqual(privateCacheDir(fresh), { dir: fresh });
    assert.equal(fs.statSync(fresh).mode & 0o777, 0o700);

    const open = folder();
    fs.chmodSync(open, 0o777);
    assert.deepEqual(privateCacheDir(open), { dir: null, reason: 'writable by other users' });

    const file = path.join(folder(), 'a-file');
    fs.writeFileSync(file, '');
    assert.equal(privateCacheDir(file).dir, null);

    const link = path.join(folder(), 'link');
    fs.symlinkSync(folder(), link);
    assert.deepEqual(privateCacheDir(link), { dir: null, reason: 'not a directory' });

    const others = folder();
    fs.chownSync(others, 12345, 12345);
    assert.deepEqual(privateCacheDir(others), { dir: null, reason: 'owned by another user' });
  });

  it('fills a folder ahead of the first start (the build step of the Docker image), every .ts of FLUX once', () => {
    const dir = path.join(folder(), 'warm');
    const out = execFileSync(process.execPath, [path.join(ROOT, 'runtime', 'patches', 'ts-strip-cache.js')], { env: { ...process.env, FLUX_TS_CACHE: dir }, encoding: 'utf8' });
    const sources = ['settings.ts', ...['runtime', 'nodes'].flatMap((d) => fs.readdirSync(path.join(ROOT, d), { recursive: true }).map((f) => path.join(d, String(f))))].filter((f) => f.endsWith('.ts'));
    const distinct = new Set(sources.map((f) => entryName(fs.readFileSync(path.join(ROOT, f), 'utf8'))));
    assert.match(out, new RegExp(`^ts-strip-cache: ${distinct.size} entries written`));
    assert.deepEqual(new Set(fs.readdirSync(dir)), distinct);
    const settings = fs.readFileSync(path.join(ROOT, 'settings.ts'), 'utf8');
    assert.equal(fs.readFileSync(path.join(dir, entryName(settings)), 'utf8'), stripTypeScriptTypes(settings, { mode: 'strip' }));
    assert.equal(warmTsStripCache(dir), 0, 'a second run finds everything there');
    fs.chmodSync(dir, 0o777);
    assert.throws(() => warmTsStripCache(dir), /writable by other users/);
  });

  it('a started FLUX fills the folder from its main thread and its worker threads, and starts again from it', async () => {
    const dir = path.join(folder(), 'cache');
    const dataDir = tempDir('flux-ts-cache-');
    const expect = (file: string) => entryName(fs.readFileSync(path.join(ROOT, file), 'utf8'));
    let flux = await startFlux({ FLUX_TS_CACHE: dir, FLUX_LOG_LEVEL: 'warn' }, { dataDir });
    try {
      const entries = new Set(fs.readdirSync(dir));
      assert.ok(entries.has(expect('runtime/app/index.ts')), 'the main thread loaded FLUX through the hook');
      assert.equal((await flux.api('PUT', '/api/plugins/echo', echo(1), { 'content-type': 'application/wasm' })).status, 201);
      const decoded = await flux.api('POST', '/api/plugins/echo/decode', { hex: '3132' });
      assert.equal(decoded.body.ok, true, JSON.stringify(decoded.body));
      // only a worker thread loads runtime/plugins/worker.ts (the pool names it as a Worker's URL)
      assert.ok(fs.readdirSync(dir).includes(expect('runtime/plugins/worker.ts')), 'the plugin worker thread loaded its module through the hook');
    } finally {
      await flux.stop();
    }
    // a second start reads what the first wrote (an entry replaced here would be what runs)
    const before = fs.readdirSync(dir).length;
    flux = await startFlux({ FLUX_TS_CACHE: dir, FLUX_LOG_LEVEL: 'warn' }, { dataDir });
    try {
      assert.equal(fs.readdirSync(dir).length, before);
      assert.equal((await flux.api('POST', '/api/plugins/echo/decode', { hex: '3132' })).body.ok, true);
    } finally {
      await flux.stop();
    }
  });
});
