/**
 * One worker thread of a pool and what the pool knows of it: the batches sent to it and not yet
 * answered, and the state the watchdog (watchdog.ts) reads and keeps.
 */
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';

export interface WorkerSlot<R> {
  worker: Worker;
  /** `[counter, inCall, batchId, index]`, written by the worker around every call it runs */
  state: Int32Array;
  /** batches sent and not answered yet, by batch id */
  inflight: Map<number, R[]>;
  /** the call counter the watchdog saw last */
  lastCounter: number;
  /** how long the watchdog has seen the worker in the same call */
  stuckMs: number;
  /** the worker thread's CPU run time when the current stuck call was first seen, and stuckMs then */
  runMark: number | undefined;
  markStuckMs: number;
  /** OS thread name (Node names the thread after the worker) and its id, found when first needed; null: not available */
  name: string;
  tid: number | null | undefined;
  /** terminated (or being terminated) by the pool: its exit is no crash */
  dead: boolean;
}

export interface SpawnOptions<R, X> {
  url: URL;
  /**
   * the worker's name, which Node gives its OS thread (at most 15 characters survive there): the
   * watchdog finds the thread by it (threadRunMs), and falls back to wall time when it is not unique
   */
  name: string;
  /** passed to the worker besides `state` */
  workerData: Record<string, unknown>;
  /** the pool's own fields of a slot */
  extra: X;
  onMessage(slot: WorkerSlot<R> & X, message: any): void;
  /** the worker failed or exited without the pool asking it to */
  onLost(slot: WorkerSlot<R> & X, reason: string): void;
}

/** Starts a worker thread with a shared state array and the pool's handlers. */
export function spawnSlot<R, X extends object>(o: SpawnOptions<R, X>): WorkerSlot<R> & X {
  const sab = new SharedArrayBuffer(16);
  const name = o.name;
  const worker = new Worker(o.url, { workerData: { state: sab, ...o.workerData }, name });
  const base: WorkerSlot<R> = { worker, state: new Int32Array(sab), inflight: new Map(), lastCounter: -1, stuckMs: 0, runMark: undefined, markStuckMs: 0, name, tid: undefined, dead: false };
  const slot = Object.assign(base, o.extra);
  worker.on('message', (m) => o.onMessage(slot, m));
  worker.on('error', (err) => o.onLost(slot, `worker error: ${err.message}`));
  worker.on('exit', (code) => {
    if (!slot.dead) o.onLost(slot, `worker exited with code ${code}`);
  });
  return slot;
}

/** The slot with the fewest batches in flight (the first of them on a tie). */
export function leastBusy<S extends { inflight: Map<number, unknown> }>(slots: readonly S[]): S {
  let best = slots[0]!;
  for (const s of slots) if (s.inflight.size < best.inflight.size) best = s;
  return best;
}

/**
 * Milliseconds of CPU the worker's thread has run (Linux: /proc/self/task/<tid>/schedstat, in ns),
 * or undefined where that cannot be told. Read only while a call is seen stuck across ticks.
 */
export function threadRunMs(slot: Pick<WorkerSlot<unknown>, 'name' | 'tid'>): number | undefined {
  if (slot.tid === null) return undefined;
  try {
    if (slot.tid === undefined) {
      const found = fs.readdirSync('/proc/self/task').filter((t) => fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === slot.name);
      if (found.length !== 1) throw new Error('not exactly one thread of that name');
      slot.tid = Number(found[0]);
    }
    return Number(fs.readFileSync(`/proc/self/task/${slot.tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    // Not Linux, no schedstat, or the thread is gone: wall time it is (for this worker).
    if (slot.tid === undefined) slot.tid = null;
    return undefined;
  }
}
