/**
 * Child of watchdog.test.ts: a plugin host decoding a stream of frames that each take several ms
 * of plugin time; the parent freezes this whole process (SIGSTOP/SIGCONT). Prints one JSON line
 * `{ ok, failed, restarts, causes }` when stdin closes. Does nothing unless FLUX_FREEZE_CHILD=1
 * (mocha loads every file of this folder).
 */
import { startHost } from './host-context.ts';
import { wat } from './fixtures.ts';

// decode spins `iterations` times (a few ms), then answers a fixed message.
const slow = (iterations: number) =>
  wat(`(module
  (memory (export "memory") 1)
  (data (i32.const 0) "{\\"device_id\\":\\"d\\",\\"values\\":{\\"v\\":1}}")
  (func (export "flux_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param $len i32) (result i32) (i32.const 1024))
  (func (export "decode") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32)
    (loop $spin (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $spin (i32.lt_u (local.get $i) (i32.const ${iterations}))))
    (i64.const 34))
)`);

async function main(): Promise<void> {
  const f = await startHost({ workers: 1, watch: false });
  // Calibrate to about 8 ms per call on this machine (well under the 50 ms deadline).
  await f.host.install('slow', slow(1_000_000), 'api');
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) await f.host.decode('slow', Buffer.from('x'));
  const perMillion = (performance.now() - t0) / 5;
  await f.host.install('slow', slow(Math.max(100_000, Math.round((8 / perMillion) * 1_000_000))), 'api');

  let ok = 0;
  let failed = 0;
  const causes: string[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      await f.host.decode('slow', Buffer.from('x')).then(
        () => ok++,
        (err) => (failed++, causes.push(err.message)),
      );
    }
  })();
  process.stdout.write('ready\n');
  process.stdin.resume();
  process.stdin.on('end', async () => {
    running = false;
    await loop;
    process.stdout.write(JSON.stringify({ ok, failed, restarts: f.host.health().restarts, causes }) + '\n');
    await f.stop();
    process.exit(0);
  });
}

if (process.env.FLUX_FREEZE_CHILD === '1') await main();
