/**
 * A rule script that returns, throws or logs a promise: quickjs-emscripten's dump disposes a
 * promise's handle, and the sandbox disposed it again, which threw in the script worker and
 * crashed it — three times (the pool's retries), failing every other rule's run of the same batch
 * with "crashed repeatedly", and never quarantined (script_error). Now such a run answers like any
 * object (`{ type: "pending" }`) and the worker lives on.
 */
import assert from 'node:assert/strict';
import { createScriptHost, type ScriptHost } from '../../runtime/scripts/index.ts';

describe('rule scripts and promises (script worker pool)', function () {
  this.timeout(30_000);
  let host: ScriptHost;
  before(async () => {
    host = await createScriptHost();
  });
  after(async () => {
    await host?.stop();
  });

  for (const source of ['return new Promise(() => {});', 'return Promise.resolve(1);', 'throw new Promise(() => {});', 'print(new Promise(() => {})); return 2;', "send_command('d', 'c', Promise.reject(1)); return 3;"]) {
    it(`${source}: no worker crash; another rule in the same batch answers`, async () => {
      const bad = host.load(source);
      const good = host.load('return msg.values.n + 1;');
      const restarts = host.pool.restarts;
      const msg = { device_id: 'd', values: { n: 1 } };
      const [b, g] = await Promise.all([bad.run(msg), good.run(msg)]);
      assert.deepEqual([g.ok, g.result], [true, 2], JSON.stringify(g));
      assert.doesNotMatch(b.error?.message ?? '', /crashed/, JSON.stringify(b));
      assert.equal(host.pool.restarts, restarts, 'no script worker was replaced');
      bad.dispose();
      good.dispose();
    });
  }
});
