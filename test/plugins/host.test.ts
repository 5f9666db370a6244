/** The plugin host with real worker threads and real modules: sandbox failures, validation, versions, hot swap, the plugins folder. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startHost, type HostFixture } from './host-context.ts';
import { echo, echoWat, wat } from './fixtures.ts';
import { PluginCallError } from '../../runtime/plugins/index.ts';
import { FluxError } from '../../runtime/errors/index.ts';

async function refusal(p: Promise<unknown>): Promise<FluxError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FluxError, `expected a FluxError, got ${err}`);
    return err;
  }
  assert.fail('the module was accepted');
}

async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('plugin host', function () {
  this.timeout(30_000);
  let f: HostFixture;
  before(async () => {
    f = await startHost({ workers: 2 });
    await f.host.install('echo', echo(1), 'api');
    await f.host.install('other', echo(9), 'api');
  });
  after(() => f?.stop());

  it('decodes a frame in a worker into a StandardMessage tagged with the version', async () => {
    const d = await f.host.decodeFrame('echo', Buffer.from('42'));
    assert.deepEqual(d, { messages: [{ device_id: 'd', values: { v: 1, seq: 42 } }], plugin: 'echo', version: 1 });
    // The seed's PluginHost shape, as the TCP ingress and the downlink call it.
    assert.deepEqual(await f.host.decode('echo', Buffer.from('7')), { device_id: 'd', values: { v: 1, seq: 7 } });
    const cmd = await f.host.encode('echo', { device_id: 'dev-1', command: 'on', params: { x: 1 } });
    assert.deepEqual(JSON.parse(cmd.toString()), { params: { x: 1 }, device_id: 'dev-1', command: 'on' });
  });

  it('cuts off a plugin that loops forever at its deadline, and the next message decodes normally', async () => {
    // (a watchdog that never fired would hang the call: mocha's timeout fails the test then)
    const [looped, neighbour] = await Promise.allSettled([f.host.decodeFrame('echo', Buffer.from('L1')), f.host.decodeFrame('other', Buffer.from('5'))]);
    assert.equal(looped.status, 'rejected');
    const err = (looped as PromiseRejectedResult).reason as PluginCallError;
    assert.equal(err.cause, 'deadline');
    assert.match(err.message, /^plugin 'echo'@1: deadline: .*50 ms/);
    assert.deepEqual((neighbour as PromiseFulfilledResult<any>).value.messages, [{ device_id: 'd', values: { v: 9, seq: 5 } }]);
    assert.deepEqual((await f.host.decodeFrame('echo', Buffer.from('43'))).messages[0].values, { v: 1, seq: 43 });
  });

  it('fails only the message of a trapping, memory-hungry or garbage-answering plugin, naming plugin and cause', async () => {
    const cases: [string, string, RegExp][] = [
      ['T', 'trap', /unreachable/],
      ['M', 'memory', /of the 64 MiB memory cap/],
      ['O', 'out_of_bounds', /ptr=2147418112 len=100, memory is \d+ bytes/],
      ['U', 'invalid_utf8', /not valid UTF-8/],
      ['J', 'invalid_json', /not JSON/],
      ['S', 'invalid_message', /no string device_id/],
      ['E', 'plugin_error', /bad checksum/],
    ];
    // All in flight together with good frames of two plugins: only the bad ones fail.
    const bad = cases.map(([c]) => f.host.decodeFrame('echo', Buffer.from(c)).then(() => assert.fail(`${c} decoded`), (e: PluginCallError) => e));
    const good = Array.from({ length: 20 }, (_, i) => f.host.decodeFrame(i % 2 ? 'echo' : 'other', Buffer.from(String(i))));
    const errors = await Promise.all(bad);
    for (let i = 0; i < cases.length; i++) {
      const [c, cause, re] = cases[i]!;
      assert.equal(errors[i]!.cause, cause, `${c}: ${errors[i]!.message}`);
      assert.match(errors[i]!.message, new RegExp(`^plugin 'echo'@1: ${cause}: `));
      assert.match(errors[i]!.message, re);
    }
    const decoded = await Promise.all(good);
    decoded.forEach((d, i) => assert.deepEqual(d.messages[0]!.values, { v: i % 2 ? 1 : 9, seq: i }));
  });

  it("reports the plugin's log lines in try calls", async () => {
    const r = await f.host.tryCall('echo', 'decode', Buffer.from('G7'));
    assert.equal(r.ok, true);
    assert.deepEqual(r.logs, ['hello from the plugin']);
    assert.deepEqual(r.output, { device_id: 'd', values: { v: 1, seq: 7 } });
    assert.ok(r.time_ms >= 0);
  });

  it('refuses non-Wasm bytes, missing exports, a wrong ABI version, forbidden imports and oversize modules, naming the problem', async () => {
    const cases: [Buffer, string, RegExp][] = [
      [Buffer.from('MZ not wasm at all'), 'not_wasm', /do not start with \\0asm/],
      [echo(1, { omit: 'decode' }), 'missing_export', /missing export 'decode'/],
      [echo(1, { omit: 'alloc' }), 'missing_export', /missing export 'alloc'/],
      [echo(1, { abi: 2 }), 'wrong_abi_version', /returned 2; this host implements ABI version 1/],
      [echo(1, { extraImport: '(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))' }), 'forbidden_import', /'wasi_snapshot_preview1.fd_write'/],
      [echo(1, { initialPages: 2048 }), 'memory_over_cap', /128 MiB of initial memory, over the 64 MiB cap/],
      [Buffer.concat([echo(1), Buffer.alloc(9 * 2 ** 20)]), 'too_large', /over the 8 MiB limit/],
    ];
    for (const [bytes, code, re] of cases) {
      const err = await refusal(f.host.install('bad', bytes, 'api'));
      assert.equal(err.status, code === 'too_large' ? 413 : 400);
      assert.equal(err.code, code, err.message);
      assert.match(err.message, re);
    }
    await assert.rejects(f.host.get('bad'), /not found/);
  });

  it('keeps every version and rolls back to the previous one', async () => {
    for (const v of [1, 2, 3]) await f.host.install('ver', echo(v), 'api');
    let info = await f.host.get('ver');
    assert.deepEqual(info.versions.map((v) => [v.version, v.active]), [[1, false], [2, false], [3, true]]);
    assert.ok(info.versions.every((v) => /^[0-9a-f]{64}$/.test(v.sha256) && v.created_at));
    assert.equal((await f.host.rollback('ver')).version, 2);
    assert.equal((await f.host.decodeFrame('ver', Buffer.from('1'))).messages[0]!.values.v, 2);
    await f.host.rollback('ver');
    await assert.rejects(f.host.rollback('ver'), /first version/);
    info = await f.host.get('ver');
    assert.equal(info.active_version, 1);
    // Installing again after a rollback makes a new version, the history stays.
    await f.host.install('ver', echo(4), 'api');
    assert.deepEqual((await f.host.get('ver')).versions.map((v) => v.version), [1, 2, 3, 4]);
  });

  it('swaps atomically: 20 swaps during a numbered stream lose, duplicate and mix up no message', async () => {
    await f.host.install('swap', echo(100), 'api');
    const modules = Array.from({ length: 20 }, (_, i) => echo(101 + i));
    const N = 20_000;
    const results: Promise<{ seq: number; v: number; version: number }>[] = [];
    let sent = 0;
    let swaps = 0;
    let swapping = true;
    const versionByOutput = new Map<number, number>([[100, (await f.host.get('swap')).active_version!]]);
    const streamed = new Promise<void>((resolve) => {
      const pump = () => {
        // Bursts of 100 frames per turn, until every swap is done and at least N frames went out.
        for (let k = 0; k < 100; k++, sent++) {
          const seq = sent;
          results.push(f.host.decodeFrame('swap', Buffer.from(String(seq))).then((d) => ({ seq: d.messages[0]!.values.seq as number, v: d.messages[0]!.values.v as number, version: d.version })));
        }
        if (swapping || sent < N) setImmediate(pump);
        else resolve();
      };
      pump();
    });
    for (const m of modules) {
      await new Promise((r) => setTimeout(r, 2));
      const { version } = await f.host.install('swap', m, 'api');
      versionByOutput.set(100 + ++swaps, version.version);
    }
    swapping = false;
    await streamed;
    const out = await Promise.all(results);
    assert.equal(swaps, 20);
    assert.equal(out.length, sent);
    assert.ok(sent >= N);
    const seen = new Set<number>();
    const used = new Set<number>();
    out.forEach((r, i) => {
      assert.equal(r.seq, i, 'each answer belongs to its own frame');
      assert.ok(!seen.has(r.seq), `frame ${r.seq} decoded twice`);
      seen.add(r.seq);
      // The output says which module ran; the host says which version it bound: they must agree.
      assert.equal(versionByOutput.get(r.v), r.version, `frame ${i}: output of module ${r.v} reported as version ${r.version}`);
      used.add(r.v);
    });
    assert.equal(seen.size, sent);
    // Submission order and versions: once a frame saw version k, no later frame sees an older one.
    for (let i = 1; i < out.length; i++) assert.ok(out[i]!.v >= out[i - 1]!.v, `frame ${i} went back from ${out[i - 1]!.v} to ${out[i]!.v}`);
    assert.equal(used.size, 21, `the stream saw ${used.size} of the 21 versions`);
  });

  it('loads, replaces and unloads plugins dropped into FLUX_PLUGINS_DIR', async () => {
    const file = path.join(f.pluginsDir, 'dropped.wasm');
    fs.writeFileSync(file, echo(50));
    await until(() => f.host.activeVersion('dropped') === 1);
    assert.equal((await f.host.decodeFrame('dropped', Buffer.from('1'))).messages[0]!.values.v, 50);
    fs.writeFileSync(file + '.part', echo(51));
    fs.renameSync(file + '.part', file);
    await until(() => f.host.activeVersion('dropped') === 2);
    assert.equal((await f.host.decodeFrame('dropped', Buffer.from('1'))).messages[0]!.values.v, 51);
    assert.equal((await f.host.get('dropped')).versions[1]!.source, 'dir');
    fs.writeFileSync(path.join(f.pluginsDir, 'broken.wasm'), 'not wasm');
    fs.rmSync(file);
    await until(() => f.host.activeVersion('dropped') === undefined);
    await assert.rejects(f.host.decodeFrame('dropped', Buffer.from('1')), /not installed or not active/);
    await until(() => f.logs.some((l) => l.msg === 'plugin file refused' && l.plugin === 'broken' && /\\0asm/.test(l.err)));
  });

  it('keeps versions across a restart and does not reinstall an unchanged file', async () => {
    const g = await startHost({ workers: 1 });
    fs.writeFileSync(path.join(g.pluginsDir, 'kept.wasm'), echo(7));
    await g.stop();
    const h = await startHost({ workers: 1, dataDir: g.dataDir, pluginsDir: g.pluginsDir });
    try {
      const info = await h.host.get('kept');
      assert.equal(info.versions.length, 1, 'the file was installed once');
      await h.host.install('kept', echo(8), 'api');
      assert.equal(h.host.activeVersion('kept'), 2);
    } finally {
      await h.stop();
    }
    const k = await startHost({ workers: 1, dataDir: g.dataDir, pluginsDir: g.pluginsDir });
    try {
      // The API upload stays active: the unchanged file in the folder is not a new deploy.
      assert.equal(k.host.activeVersion('kept'), 2);
      assert.equal((await k.host.decodeFrame('kept', Buffer.from('3'))).messages[0]!.values.v, 8);
    } finally {
      await k.stop();
    }
  });

  it('spawns no worker thread until the first call, then loads every active version into the workers before it', async () => {
    // Threads of this process named after plugin workers (Linux; elsewhere the health numbers must do).
    const threads = () => {
      try {
        return fs.readdirSync('/proc/self/task').filter((t) => fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').startsWith('flux-plugin-')).length;
      } catch {
        return 0;
      }
    };
    const before = threads();
    const g = await startHost({ workers: 2, watch: false });
    try {
      assert.deepEqual(g.host.health(), { ok: true, workers: 0, plugins: 0, queued: 0, restarts: 0 });
      // Upload validation instantiates the module in a short-lived probe worker, which does not stay.
      await g.host.install('lazy', echo(1), 'api');
      await g.host.install('lazy', echo(2), 'api');
      await g.host.install('lazy2', echo(5), 'api');
      const spin = echoWat(3).replace(/\)\s*$/, '(func $spin (loop $l (br $l))) (start $spin))');
      const err = await refusal(g.host.install('spins', wat(spin), 'api'));
      assert.equal(err.code, 'instantiation_failed');
      assert.equal(g.host.health().workers, 0);
      await until(() => threads() === before);
      // The first call spawns both workers; the active versions (v2 after the swap) answer at once.
      const [a, b] = await Promise.all([g.host.decodeFrame('lazy', Buffer.from('4')), g.host.decodeFrame('lazy2', Buffer.from('6'))]);
      assert.deepEqual([a.version, a.messages[0]!.values, b.messages[0]!.values], [2, { v: 2, seq: 4 }, { v: 5, seq: 6 }]);
      assert.equal(g.host.health().workers, 2);
      // Swaps and rollbacks go on as before with the workers running.
      await g.host.rollback('lazy');
      assert.deepEqual((await g.host.decodeFrame('lazy', Buffer.from('5'))).messages[0]!.values, { v: 1, seq: 5 });
    } finally {
      await g.stop();
    }
  });

  it('tries a candidate module on a host that has no worker yet', async () => {
    const g = await startHost({ workers: 1, watch: false });
    try {
      const r = await g.host.tryCall('cand', 'decode', Buffer.from('8'), echo(4));
      assert.equal(r.ok, true);
      assert.deepEqual(r.output, { device_id: 'd', values: { v: 4, seq: 8 } });
      assert.equal(r.plugin.version, 'candidate');
    } finally {
      await g.stop();
    }
  });

  it('answers the seed-style WAT module of the ABI document', async () => {
    const doc = fs.readFileSync(new URL('../../docs/plugin-abi.md', import.meta.url), 'utf8');
    const m = /```wat\n([\s\S]*?)```/.exec(doc);
    assert.ok(m, 'docs/plugin-abi.md has a ```wat block');
    await f.host.install('doc-example', wat(m[1]!), 'api');
    const d = await f.host.decodeFrame('doc-example', Buffer.from('010302 01c50000'.replace(' ', ''), 'hex'));
    assert.deepEqual(d.messages, [{ device_id: 'sensor_1', values: { temperature: 45.3 } }]);
    const meta = f.host.meta('doc-example')!;
    assert.deepEqual(meta.framing, { type: 'fixed', size: 7, max: 65536 });
  });
});
