/** deferLibraries(): stand-ins that load the real library on first use, for requirers in one directory. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { deferLibraries, type DeferredLibrary } from '../../runtime/patches/index.ts';
import { UMZUG_CLI_EXPORTS, UMZUG_LIB_DIR } from '../../runtime/app/startup-deferrals.ts';

const LIB = `
globalThis.__deferralLoads = (globalThis.__deferralLoads ?? 0) + 1;
class Thing {
  constructor(x) { this.x = x; this.calls = []; }
  hello() { return 'hi ' + this.x; }
  configure(v) { this.calls.push(v); return this; }
}
module.exports = Thing;
module.exports.Thing = Thing;
module.exports.value = 42;
module.exports.add = (a, b) => a + b;
`;
const ESM_LIB = `
globalThis.__deferralLoads = (globalThis.__deferralLoads ?? 0) + 1;
export async function fetchIt(x) { return 'fetched ' + x; }
`;
const loads = () => (globalThis as { __deferralLoads?: number }).__deferralLoads ?? 0;

const dirs: string[] = [];

/** A fresh directory (each test its own: stand-ins are per file) with node_modules/fake-lib, node_modules/fake-esm and requirer/. */
function fixture(): { dir: string; requirer: string; require: NodeJS.Require } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-deferral-'));
  dirs.push(dir);
  fs.mkdirSync(path.join(dir, 'node_modules', 'fake-lib'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'node_modules', 'fake-lib', 'index.js'), LIB);
  fs.mkdirSync(path.join(dir, 'node_modules', 'fake-esm'));
  fs.writeFileSync(path.join(dir, 'node_modules', 'fake-esm', 'package.json'), '{"name":"fake-esm","type":"module","main":"index.js"}');
  fs.writeFileSync(path.join(dir, 'node_modules', 'fake-esm', 'index.js'), ESM_LIB);
  const requirer = path.join(dir, 'requirer');
  fs.mkdirSync(requirer);
  return { dir, requirer, require: createRequire(path.join(requirer, 'x.js')) };
}

/** Writes requirer/<name>.cjs with `body` and requires it under a deferral of `libs`. */
function load(f: ReturnType<typeof fixture>, name: string, body: string, libs: Record<string, DeferredLibrary>, onLoad?: (n: string) => void) {
  fs.writeFileSync(path.join(f.requirer, `${name}.cjs`), body);
  const hooks = deferLibraries(f.requirer, libs, onLoad);
  try {
    return f.require(`./${name}.cjs`);
  } finally {
    hooks.deregister();
  }
}

describe('deferLibraries', function () {
  after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('loads a library on the first use of its stand-in, once, and tells onLoad', function () {
    const f = fixture();
    const told: string[] = [];
    const before = loads();
    const lib = load(f, 'a', "module.exports = require('fake-lib');", { 'fake-lib': {} }, (n) => told.push(n));
    assert.equal(loads(), before, 'not loaded by the require');
    assert.equal(lib.value, 42);
    assert.equal(lib.add(1, 2), 3);
    assert.equal(loads(), before + 1);
    assert.deepEqual(told, ['fake-lib']);
    assert.ok('add' in lib);
    assert.ok(Object.keys(lib).includes('value'));
  });

  it('calls and constructs a callable library, whose instances are the real class', function () {
    const f = fixture();
    const lib = load(f, 'b', "module.exports = require('fake-lib');", { 'fake-lib': { callable: true } });
    const real = f.require('fake-lib');
    const t = new lib('b');
    assert.ok(t instanceof real);
    assert.ok(t instanceof lib);
    assert.equal(t.hello(), 'hi b');
    class Sub extends (lib as new (x: string) => { hello(): string }) {}
    assert.equal(new Sub('c').hello(), 'hi c');
  });

  it('stands in for members read while loading, loading the library only when one is used', function () {
    const f = fixture();
    const before = loads();
    const { Thing } = load(f, 'c', "const { Thing } = require('fake-lib'); module.exports = { Thing };", { 'fake-lib': { members: ['Thing'] } });
    assert.equal(loads(), before);
    assert.equal(new Thing('d').hello(), 'hi d');
    assert.equal(loads(), before + 1);
  });

  it('gives a library enumerated while loading exactly the listed exports, without loading it', function () {
    const f = fixture();
    const before = loads();
    const reexported = load(
      f,
      'd',
      "const m = require('fake-lib'); const out = {}; for (const k in m) Object.defineProperty(out, k, { enumerable: true, get: () => m[k] }); module.exports = out;",
      { 'fake-lib': { exports: ['Thing', 'add'] } },
    );
    assert.deepEqual(Object.keys(reexported), ['Thing', 'add']);
    assert.equal(loads(), before);
    assert.equal(reexported.add(2, 3), 5);
    assert.equal(new reexported.Thing('e').hello(), 'hi e');
  });

  it('records the listed calls on an instance built while loading and replays them on first use', function () {
    const f = fixture();
    const before = loads();
    const inst = load(f, 'e', "const T = require('fake-lib'); const t = new T('f'); t.configure(1).configure(2); module.exports = t;", { 'fake-lib': { callable: true, recordedCalls: ['configure'] } });
    assert.equal(loads(), before, 'construction and recorded calls load nothing');
    assert.equal(inst.hello(), 'hi f');
    assert.deepEqual(inst.calls, [1, 2]);
    assert.equal(loads(), before + 1);
  });

  it('stands in for the async functions of an ES module taken with import()', async function () {
    const f = fixture();
    const told: string[] = [];
    const before = loads();
    const mod = load(f, 'g', "module.exports = import('fake-esm');", { 'fake-esm': { asyncFunctions: ['fetchIt'] } }, (n) => told.push(n));
    const { fetchIt } = await mod;
    assert.equal(loads(), before);
    assert.equal(await fetchIt('x'), 'fetched x');
    assert.equal(await fetchIt('y'), 'fetched y');
    assert.equal(loads(), before + 1);
    assert.deepEqual(told, ['fake-esm']);
  });

  it('leaves requirers outside the directory, and requires after deregister(), the real library', function () {
    const f = fixture();
    const real = f.require('fake-lib');
    fs.writeFileSync(path.join(f.dir, 'outside.cjs'), "module.exports = require('fake-lib');");
    const hooks = deferLibraries(f.requirer, { 'fake-lib': {} });
    try {
      assert.equal(createRequire(pathToFileURL(path.join(f.dir, 'x.js')))('./outside.cjs'), real);
    } finally {
      hooks.deregister();
    }
    fs.writeFileSync(path.join(f.requirer, 'late.cjs'), "module.exports = require('fake-lib');");
    assert.equal(f.require('./late.cjs'), real);
  });
});

describe('startup deferrals', function () {
  it("list umzug's CLI exports as umzug/lib/cli.js has them (umzug/lib/index.js re-exports each)", function () {
    const cli = createRequire(path.join(UMZUG_LIB_DIR, 'x.js'))('./cli.js');
    assert.deepEqual([...UMZUG_CLI_EXPORTS].sort(), Object.keys(cli).sort());
  });

  it('keep sequelize\'s validator and prom-client\'s @opentelemetry/api unloaded until first use, and both work then', function () {
    this.timeout(20_000);
    // A fresh process: this one may have loaded either library already.
    const script = `
      import { createRequire } from 'node:module';
      import { deferStartupLibraries } from ${JSON.stringify(pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../runtime/app/startup-deferrals.ts')).href)};
      const require = createRequire(${JSON.stringify(path.join(UMZUG_LIB_DIR, 'x.js'))});
      const loaded = (name) => Object.keys(require.cache).some((f) => f.includes('/node_modules/' + name + '/') && !f.endsWith('.flux-deferred.cjs'));
      const hooks = deferStartupLibraries();
      const { Sequelize, DataTypes } = require('sequelize');
      const prom = require('prom-client');
      hooks.deregister();
      const registry = new prom.Registry();
      prom.collectDefaultMetrics({ register: registry });
      await registry.metrics();
      const before = { validator: loaded('validator'), otel: loaded('@opentelemetry/api') };
      const checks = [Sequelize.Validator.isInt('12'), Sequelize.Validator.isInt('x'), new DataTypes.INTEGER().validate(7)];
      console.log(JSON.stringify({ before, checks, after: { validator: loaded('validator') } }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
    assert.deepEqual(out, { before: { validator: false, otel: false }, checks: [true, false, true], after: { validator: true } });
  });
});
