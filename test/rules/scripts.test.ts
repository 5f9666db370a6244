/** The script host on real QuickJS: the seed's two Rhai scripts verbatim, the Rhai translation, and every sandbox limit. */
import assert from 'node:assert/strict';
import { createScriptHost, translateScript, ScriptSyntaxError, type ScriptHost } from '../../runtime/scripts/index.ts';

import { SEED_HIGH_TEMPERATURE_RULE, SEED_SCENE } from './seed-scripts.ts';

describe('script host (QuickJS sandboxes)', function () {
  let host: ScriptHost;
  before(async function () {
    host = await createScriptHost();
  });

  describe('the seed scripts, verbatim', function () {
    it('triggers the high-temperature rule at 46.0 °C and prints its warning', function () {
      const s = host.compile(SEED_HIGH_TEMPERATURE_RULE);
      const r = s.run({ device_id: 'sensor_01', values: { temperature: 46.0 } });
      s.dispose();
      assert.equal(r.ok, true, JSON.stringify(r.error));
      assert.equal(r.result, true);
      assert.deepEqual(r.logs, [{ level: 'print', message: 'Warning: High temperature detected!' }]);
    });

    it('does not trigger the high-temperature rule at 44.0 °C and prints nothing', function () {
      const s = host.compile(SEED_HIGH_TEMPERATURE_RULE);
      const r = s.run({ device_id: 'sensor_01', values: { temperature: 44.0 } });
      s.dispose();
      assert.equal(r.ok, true);
      assert.equal(r.result, false);
      assert.equal(r.logs, null);
    });

    it('has the scene script ask for TurnOn {brightness: 100} on light_switch_01 at lux 30 with motion, and log why', function () {
      const s = host.compile(SEED_SCENE);
      const r = s.run({ device_id: 'room_sensor', values: { lux: 30, motion: 1 } });
      assert.equal(r.ok, true, JSON.stringify(r.error));
      assert.deepEqual(r.commands, [{ device_id: 'light_switch_01', command: 'TurnOn', params: { brightness: 100 } }]);
      assert.deepEqual(r.logs, [{ level: 'info', message: 'Opened light due to dark environment.' }]);
      const bright = s.run({ device_id: 'room_sensor', values: { lux: 80, motion: 1 } });
      assert.equal(bright.commands, null, 'no command when it is bright');
      s.dispose();
    });
  });

  describe('the Rhai translation (a tokenizer, not a regex)', function () {
    it('leaves #{ inside strings, comments, regexes and template text alone and translates it inside ${…}', function () {
      const src = 'let s = "#{ not a map }"; // #{ comment\n/* #{ */ let re = /#{/;\nreturn [s, re.test(s), `#{x} ${ #{ a: 1 }.a }`, \'#{\'];';
      const s = host.compile(src);
      const r = s.run({ device_id: 'd', values: {} });
      s.dispose();
      assert.deepEqual(r.result, ['#{ not a map }', true, '#{x} 1', '#{']);
    });

    it('wraps a Rhai condition that only starts with parentheses and keeps JavaScript conditions as written', function () {
      assert.equal(translateScript('if (a) > 1 { x() }').code, 'if ((a) > 1) { x() }');
      assert.equal(translateScript('if (a) return 1;').code, 'if (a) return 1;');
      assert.equal(translateScript('while n < 3 { n += 1 }').code, 'while (n < 3) { n += 1 }');
      assert.equal(translateScript('if x.if > 1 { }').code, 'if (x.if > 1) { }');
    });

    it('supports nested maps, Rhai fn declarations and else-if chains', function () {
      const s = host.compile('fn level(t) { if t > 50 { return "critical" } else if t > 45 { return "warning" } return "info" }\nreturn #{ level: level(msg.values.t), nested: #{ k: [1, #{ z: 2 }] } };');
      const r = s.run({ device_id: 'd', values: { t: 47 } });
      s.dispose();
      assert.deepEqual(r.result, { level: 'warning', nested: { k: [1, { z: 2 }] } });
    });
  });

  describe('limits: each fails that run with a clear error and the host keeps serving', function () {
    const healthy = () => {
      const s = host.compile(SEED_HIGH_TEMPERATURE_RULE);
      const r = s.run({ device_id: 'd', values: { temperature: 50 } });
      s.dispose();
      return r.result;
    };

    it('stops while(true){} at the 20 ms deadline', function () {
      const s = host.compile('while(true){}');
      const t0 = performance.now();
      const r = s.run({ device_id: 'd', values: {} });
      const took = performance.now() - t0;
      assert.equal(r.ok, false);
      assert.equal(r.error!.code, 'script_timeout');
      assert.match(r.error!.message, /20 ms deadline/);
      assert.ok(took < 500, `stopped after ${took} ms`);
      // The same script is usable again (its runtime was rebuilt) and still times out cleanly.
      assert.equal(s.run({ device_id: 'd', values: {} }).error!.code, 'script_timeout');
      assert.ok(s.rebuilds >= 1);
      s.dispose();
      assert.equal(healthy(), true);
    });

    it('refuses a 200 MB allocation with a memory-limit error', function () {
      const s = host.compile('const big = "x".repeat(200 * 1024 * 1024); return big.length;');
      const r = s.run({ device_id: 'd', values: {} });
      assert.equal(r.error?.code, 'script_memory');
      assert.match(r.error!.message, /memory limit of 16 MiB/);
      const arr = host.compile('const a = new Array(50e6).fill(1.5); return a.length;');
      assert.equal(arr.run({ device_id: 'd', values: {} }).error?.code, 'script_memory');
      s.dispose();
      arr.dispose();
      assert.equal(healthy(), true);
    });

    it('stops deep recursion with a stack-overflow error', function () {
      const s = host.compile('function f(n) { return f(n + 1) + 1 } return f(0);');
      const r = s.run({ device_id: 'd', values: {} });
      s.dispose();
      assert.equal(r.error?.code, 'script_stack');
      assert.equal(healthy(), true);
    });

    it("answers require('fs') with a ReferenceError naming the line: there is no require, no timers, no network", function () {
      const s = host.compile("let x = 1;\nconst fs = require('fs');");
      const r = s.run({ device_id: 'd', values: {} });
      assert.equal(r.error?.code, 'script_error');
      assert.match(r.error!.message, /ReferenceError: 'require' is not defined \(line 2, column 12\)/);
      const globals = host.compile("return ['require','setTimeout','setInterval','fetch','process','XMLHttpRequest','WebSocket','importScripts'].filter((g) => typeof globalThis[g] !== 'undefined');");
      assert.deepEqual(globals.run({ device_id: 'd', values: {} }).result, []);
      s.dispose();
      globals.dispose();
    });

    it('reports a syntax error with its line and column when compiled', function () {
      assert.throws(
        () => host.compile('let temp = msg.values.temperature;\nif temp > {\n  return true;\n}'),
        (err: unknown) => err instanceof ScriptSyntaxError && err.line === 2 && err.column === 10 && /line 2, column 10/.test(err.message),
      );
      assert.throws(() => host.compile('let s = "unterminated;'), (err: unknown) => err instanceof ScriptSyntaxError && err.line === 1 && err.column === 9);
    });

    it('keeps env read-only', function () {
      const s = host.compile('env.threshold = 1; return env.threshold;', { threshold: 45 });
      const r = s.run({ device_id: 'd', values: {} });
      s.dispose();
      assert.equal(r.ok, false);
      assert.match(r.error!.message, /TypeError/);
      const ok = host.compile('return msg.values.t > env.threshold;', { threshold: 45 });
      assert.equal(ok.run({ device_id: 'd', values: { t: 46 } }).result, true);
      ok.dispose();
    });

    it('rebuilds a runtime whose kept state grew past half its memory cap', function () {
      // Small allocations kept in a global: QuickJS's limit undercounts them, so the host checks usage itself.
      const s = host.compile('globalThis.keep ??= []; for (let i = 0; i < 2000; i++) keep.push({ i, s: "x" + i }); return keep.length;', {}, { memoryBytes: 8 * 1024 * 1024 });
      let max = 0;
      for (let i = 0; i < 1500; i++) {
        const r = s.run({ device_id: 'd', values: {} });
        if (r.ok) max = Math.max(max, r.result as number);
      }
      assert.ok(s.rebuilds >= 1, `rebuilds: ${s.rebuilds}, kept up to ${max}`);
      assert.ok(s.memoryUsed() < 8 * 1024 * 1024, `memory now ${s.memoryUsed()}`);
      s.dispose();
    });
  });

  it('compiles once and re-runs the same function in the same context for every message', function () {
    // A fresh compile or context per message would answer 1 every time.
    const s = host.compile('globalThis.runs = (globalThis.runs ?? 0) + 1; return runs;');
    const seen = [1, 2, 3].map(() => s.run({ device_id: 'd', values: {} }).result);
    s.dispose();
    assert.deepEqual(seen, [1, 2, 3]);
  });
});
