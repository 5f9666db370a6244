/**
 * What a rule script answers crosses to FLUX's main thread with every message (msg.result of the
 * `flux rule` node, a webhook body): a rule returning 'x'.repeat(3e6) on 200 uplinks grew a real
 * FLUX's RSS from 445 MB to 1.8 GB, and 200 such runs in one batch made the worker's answer longer
 * than a string can be ("Invalid string length"): the worker crashed three times and every other
 * rule's run of the batch failed. A result is now at most 64 KiB of JSON, a command's params 16 KiB.
 */
import assert from 'node:assert/strict';
import { createScriptHost, type ScriptHost } from '../../runtime/scripts/index.ts';

describe('rule scripts with huge outputs (script worker pool)', function () {
  this.timeout(30_000);
  let host: ScriptHost;
  const msg = { device_id: 'd', values: { n: 1 } };
  before(async () => {
    host = await createScriptHost();
  });
  after(async () => {
    await host?.stop();
  });

  const run = async (source: string) => {
    const s = host.load(source);
    try {
      return await s.run(msg);
    } finally {
      s.dispose();
    }
  };

  it('a result over 64 KiB of JSON fails the run with the reason; one under it is answered', async () => {
    for (const source of ["return 'x'.repeat(1e6);", "return { a: 'x'.repeat(70000) };", "return ['x'.repeat(40000), 'y'.repeat(40000)];"]) {
      const o = await run(source);
      assert.equal(o.ok, false, source);
      assert.equal(o.error?.code, 'script_error');
      assert.match(o.error!.message, /characters of JSON, over the limit of 65536/);
    }
    const ok = await run("return 'x'.repeat(60000);");
    assert.equal(ok.ok, true);
    assert.equal((ok.result as string).length, 60000);
  });

  it('send_command with params over 16 KiB of JSON fails the run; nothing is sent', async () => {
    const o = await run("send_command('d', 'c', { a: 'x'.repeat(20000) }); return true;");
    assert.equal(o.ok, false);
    assert.match(o.error!.message, /params over 16384 characters/);
    assert.equal(o.commands?.length ?? 0, 0);
    const fine = await run("send_command('d', 'c', { a: 'x'.repeat(1000) }); return true;");
    assert.equal(fine.commands?.length, 1);
  });
});
