/**
 * The rule engine loads QuickJS on first need: not at start without enabled rules, then on the first
 * save, test or inline script. And its callback path (`evaluateEach`) answers as `evaluate` does.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { createRegistry, type Registry } from '../../runtime/registry/index.ts';
import { createDeviceBus } from '../../runtime/bus/index.ts';
import { createMetrics } from '../../runtime/metrics/index.ts';
import { createTracer } from '../../runtime/trace/index.ts';
import type { FluxContext } from '../../runtime/app/index.ts';
import { FluxError } from '../../runtime/errors/index.ts';
import { createRuleEngine, type RuleEngine } from '../../runtime/rules/index.ts';
import { tempDir } from '../helpers/flux-process.ts';

interface Fixture {
  engine: RuleEngine;
  registry: Registry;
  stop(): Promise<void>;
}

async function start(dataDir = tempDir('flux-lazy-rules-')): Promise<Fixture & { dataDir: string }> {
  const settings = loadSettings({ FLUX_DATA_DIR: dataDir, FLUX_ADMIN_TOKEN: 'test-admin-token-0123456789abcdef' });
  const log = createLogger({ level: 'warn', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
  const registry = createRegistry({ db: settings.db, log });
  await registry.start();
  const ctx = { settings, log, registry, bus: createDeviceBus(log), metrics: createMetrics(), trace: createTracer(), adminToken: 'x' } as unknown as FluxContext;
  const engine = createRuleEngine(ctx, registry.rules, {}, { pollMs: 0 });
  await engine.start();
  return {
    engine,
    registry,
    dataDir,
    async stop() {
      await engine.stop();
      await registry.stop();
    },
  };
}

const health = (e: RuleEngine) => e.health!() as unknown as { ok: boolean; not_compiling: number; scripts_loaded: boolean };
const loaded = (e: RuleEngine) => health(e).scripts_loaded;
const msg = { device_id: 'd1', values: { temperature: 46 } };

describe('rule engine: QuickJS on first need', function () {
  it('starts without QuickJS when there is no rule, and loads it for the first save, keeping syntax errors a 400 with line and column', async () => {
    const f = await start();
    try {
      assert.equal(loaded(f.engine), false);
      assert.equal(health(f.engine).ok, true);
      assert.deepEqual(await f.engine.evaluate({ message: msg }), []);
      assert.throws(() => f.engine.inline('return true;'), (e: FluxError) => e.status === 503);
      const err = await f.engine.create({ name: 'bad', trigger_script: 'let x = ;\nreturn true;', action_type: 'flow' } as never).then(
        () => assert.fail('saved'),
        (e: FluxError) => e,
      );
      assert.equal(err.status, 400);
      assert.equal(err.code, 'script_syntax');
      assert.deepEqual([(err.details as { line: number }).line, (err.details as { column: number }).column], [1, 9]);
      assert.equal(loaded(f.engine), true);
      const r = await f.engine.create({ name: 'hot', trigger_script: 'return msg.values.temperature > 45;', action_type: 'flow' } as never);
      assert.equal((await f.engine.evaluate({ message: msg }))[0]!.triggered, true);
      assert.equal((await f.engine.test(r.id, msg)).triggered, true);
    } finally {
      await f.stop();
    }
  });

  it('loads QuickJS at start for an enabled rule, and only on first need for disabled ones (which then compile)', async () => {
    const f = await start();
    const r = await f.engine.create({ name: 'hot', trigger_script: 'return msg.values.temperature > 45;', action_type: 'flow', enabled: false } as never);
    await f.stop();
    const g = await start(f.dataDir);
    try {
      assert.equal(loaded(g.engine), false, 'only a disabled rule: no QuickJS');
      assert.equal(health(g.engine).not_compiling, 0);
      assert.deepEqual(await g.engine.evaluate({ message: msg }), []);
      const answer = await g.engine.testScript('return msg.values.temperature > 40;', msg);
      assert.equal(answer.triggered, true);
      assert.equal(loaded(g.engine), true);
      await g.engine.update(r.id, { enabled: true });
      assert.equal((await g.engine.evaluate({ message: msg }))[0]!.triggered, true);
    } finally {
      await g.stop();
    }
    const h = await start(f.dataDir);
    try {
      assert.equal(loaded(h.engine), true, 'an enabled rule: QuickJS at start');
      assert.equal((await h.engine.evaluate({ message: msg }))[0]!.triggered, true);
      // The flux rule node's inline mode: loadScripts() first, then inline() compiles synchronously.
      await h.engine.loadScripts();
      const inline = h.engine.inline('return msg.values.temperature > 50;');
      assert.equal((await inline.run({ message: msg })).triggered, false);
      inline.dispose();
    } finally {
      await h.stop();
    }
  });
});

describe('rule engine: evaluateEach, the flux rule node\'s path without Promises', function () {
  it('evaluateEach answers once, with the runs in creation order, like evaluate: none, several, filtered by device, one that fails', async () => {
    const f = await start();
    const each = (m: typeof msg) => new Promise<RuleRunView[]>((resolve, reject) => {
      let calls = 0;
      f.engine.evaluateEach({ message: m }, (runs) => {
        if (++calls > 1) reject(new Error('done called twice'));
        setTimeout(() => resolve(runs.map((r) => ({ name: r.rule.name, triggered: r.triggered, ok: r.outcome.ok }))), 20);
      });
    });
    try {
      assert.deepEqual(await each(msg), [], 'no rule: answered at once');
      const product = await f.registry.products.create({ key: 'meters', name: 'meters' } as never);
      await f.registry.devices.create({ id: 'd2', product_id: product.id } as never);
      for (const [name, script, device_id] of [['a', 'return msg.values.temperature > 45;'], ['b', 'return false;'], ['only-d2', 'return true;', 'd2'], ['c', 'throw new Error("x");']] as const)
        await f.engine.create({ name, trigger_script: script, action_type: 'flow', ...(device_id ? { device_id } : {}) } as never);
      const got = await each(msg);
      assert.deepEqual(got, [{ name: 'a', triggered: true, ok: true }, { name: 'b', triggered: false, ok: true }, { name: 'c', triggered: false, ok: false }]);
      const viaPromise = (await f.engine.evaluate({ message: msg })).map((r) => ({ name: r.rule.name, triggered: r.triggered, ok: r.outcome.ok }));
      assert.deepEqual(viaPromise, got);
      assert.deepEqual((await each({ ...msg, device_id: 'd2' })).map((r) => r.name), ['a', 'b', 'only-d2', 'c']);
    } finally {
      await f.stop();
    }
  });
});

interface RuleRunView {
  name: string;
  triggered: boolean;
  ok: boolean;
}
