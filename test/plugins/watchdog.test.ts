/**
 * The deadline watchdog does not charge a plugin for time its whole process did not run (a loaded
 * machine descheduling it, a stopped process): its ticks count at most a few periods each.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('plugin watchdog', function () {
  this.timeout(60_000);

  it('does not cut off calls of a process that was frozen mid-call (SIGSTOP for 200 ms, five times)', async function () {
    if (process.platform === 'win32') this.skip();
    const child = spawn(process.execPath, [path.join(path.dirname(fileURLToPath(import.meta.url)), 'freeze-child.ts')], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, FLUX_FREEZE_CHILD: '1' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    try {
      const end = Date.now() + 30_000;
      while (!out.includes('ready\n')) {
        if (Date.now() > end) throw new Error(`the child did not start: ${out}`);
        await sleep(20);
      }
      for (let i = 0; i < 5; i++) {
        await sleep(150);
        child.kill('SIGSTOP');
        await sleep(200);
        child.kill('SIGCONT');
      }
      await sleep(150);
      child.stdin.end();
      while (!out.includes('}')) {
        if (Date.now() > end) throw new Error(`no result from the child: ${out}`);
        await sleep(20);
      }
    } finally {
      child.kill('SIGCONT');
    }
    const r = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!);
    assert.ok(r.ok > 20, `only ${r.ok} calls answered`);
    assert.deepEqual({ failed: r.failed, restarts: r.restarts, causes: r.causes }, { failed: 0, restarts: 0, causes: [] });
  });
});
