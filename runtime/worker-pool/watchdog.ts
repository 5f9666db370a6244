/**
 * The watchdog of a worker pool: a timer that runs while any worker has work, and cuts off a call
 * that has run past its limit (the pool terminates that worker and runs the rest of its work again
 * on a replacement).
 *
 * Each tick that sees a worker still in the same call charges it the time since the previous tick,
 * but at most four periods: a tick that comes much later means this process did not run (a loaded
 * machine, a long pause), so the worker most likely did not either. Where the OS tells a thread's
 * CPU time (Linux), a call seen stuck is charged what its worker thread actually ran instead: a
 * worker starved of CPU by other processes is not a call that loops. A call that really loops is
 * stopped within its limit plus a period either way.
 */
import { threadRunMs, type WorkerSlot } from './slot.ts';

export interface WatchdogOptions<S> {
  periodMs: number;
  /** the workers to watch now (a copy: `expired` may replace slots) */
  slots(): S[];
  /** the worker has work sent to it and not answered */
  busy(slot: S): boolean;
  /** how long the call at (batch id, index) may run */
  limitMs(slot: S, bid: number, index: number): number;
  /** the call at (batch id, index) ran past its limit */
  expired(slot: S, bid: number, index: number, limitMs: number): void;
}

export class Watchdog<S extends WorkerSlot<unknown>> {
  readonly #o: WatchdogOptions<S>;
  #timer: NodeJS.Timeout | undefined;
  #lastTick = 0;
  #stopped = false;

  constructor(o: WatchdogOptions<S>) {
    this.#o = o;
  }

  /** Starts ticking if it is not (called whenever work is sent to a worker). */
  arm(): void {
    if (this.#timer || this.#stopped) return;
    this.#lastTick = performance.now();
    this.#timer = setInterval(() => this.#tick(), this.#o.periodMs);
    this.#timer.unref();
  }

  /** For good: the pool stopped. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
  }

  #tick(): void {
    const now = performance.now();
    const step = Math.min(now - this.#lastTick, this.#o.periodMs * 4);
    this.#lastTick = now;
    let busy = false;
    for (const slot of this.#o.slots()) {
      if (!this.#o.busy(slot)) continue;
      busy = true;
      const charged = chargeStuck(slot, step);
      if (charged === undefined) continue;
      const bid = Atomics.load(slot.state, 2);
      const index = Atomics.load(slot.state, 3);
      const limit = this.#o.limitMs(slot, bid, index);
      if (charged >= limit) this.#o.expired(slot, bid, index, limit);
    }
    if (!busy && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/** Milliseconds charged to the call the worker is in, or undefined when it is in none or in another one than last tick. */
function chargeStuck(slot: WorkerSlot<unknown>, step: number): number | undefined {
  const counter = Atomics.load(slot.state, 0);
  if (Atomics.load(slot.state, 1) !== 1 || counter !== slot.lastCounter) {
    slot.lastCounter = counter;
    slot.stuckMs = 0;
    slot.runMark = undefined;
    return undefined;
  }
  slot.stuckMs += step;
  const run = threadRunMs(slot);
  if (run === undefined) return slot.stuckMs;
  if (slot.runMark === undefined) {
    slot.runMark = run;
    slot.markStuckMs = slot.stuckMs;
  }
  return slot.markStuckMs + (run - slot.runMark);
}
