/**
 * @module worker-pool — what the plugin pool (runtime/plugins/pool.ts) and the script pool
 * (runtime/scripts/pool.ts) share: starting a worker thread with the state array its watchdog
 * reads, the queue with adaptive batching (many calls per postMessage), and the watchdog that cuts
 * off a call past its limit, charged by the worker thread's CPU time where the OS tells it. What a
 * call is, how a batch is encoded and what a replaced worker's calls become stay with each pool.
 */
export { spawnSlot, leastBusy, threadRunMs, type WorkerSlot, type SpawnOptions } from './slot.ts';
export { Watchdog, type WatchdogOptions } from './watchdog.ts';
export { Dispatcher, type BatchLimits, type DispatchOptions } from './dispatch.ts';
