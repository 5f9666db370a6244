/**
 * Probe (not part of `npm run bench`): the main thread's CPU per round trip to a worker thread and
 * back, back to back and with both threads sleeping in between — what each batch pays per worker
 * pool (docs/benchmarks.md "Session 7").
 *
 *   node bench/lib/thread-hop.ts
 */
import { Worker } from 'node:worker_threads';

const worker = new Worker(`const { parentPort } = require('node:worker_threads'); parentPort.on('message', (m) => parentPort.postMessage(typeof m === 'string' ? m : 'ok'));`, { eval: true });
await new Promise((resolve) => worker.once('online', resolve));

async function roundTrips(label: string, n: number, gapMs: number, payload: () => unknown): Promise<void> {
  let got = 0;
  const { promise, resolve } = Promise.withResolvers<void>();
  const send = () => worker.postMessage(payload());
  const onMessage = () => {
    if (++got === n) resolve();
    else if (gapMs) setTimeout(send, gapMs);
    else send();
  };
  worker.on('message', onMessage);
  const cpu0 = process.threadCpuUsage();
  const t0 = performance.now();
  send();
  await promise;
  const cpu = process.threadCpuUsage(cpu0);
  const wall = performance.now() - t0;
  worker.off('message', onMessage);
  console.log(`${label}: ${n} round trips, main thread ${((cpu.user + cpu.system) / n).toFixed(1)} µs CPU each (user ${(cpu.user / n).toFixed(1)}, system ${(cpu.system / n).toFixed(1)}), ${((wall * 1000) / n).toFixed(0)} µs wall`);
}

/** The same loop without the worker: what waking up for a 1 ms timer costs by itself. */
async function timerOnly(n: number): Promise<void> {
  const cpu0 = process.threadCpuUsage();
  for (let i = 0; i < n; i++) await new Promise((resolve) => setTimeout(resolve, 1));
  const cpu = process.threadCpuUsage(cpu0);
  console.log(`a 1 ms timer alone: ${n} wake-ups, main thread ${((cpu.user + cpu.system) / n).toFixed(1)} µs CPU each`);
}

await roundTrips('back to back, a short string', 20_000, 0, () => 'x');
await timerOnly(2000);
await roundTrips('1 ms apart (both threads sleep), a short string', 2000, 1, () => 'x');
await roundTrips('1 ms apart, a 4 KB transferable-sized object', 2000, 1, () => ({ t: 'batch', bid: 1, keys: ['k'], buf: new ArrayBuffer(4000) }));
await roundTrips('1 ms apart, a 4 KB JSON string', 2000, 1, () => JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ device: `sensor_${i}`, values: { temperature: 21.5 } }))));
await worker.terminate();
