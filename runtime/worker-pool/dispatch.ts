/**
 * The queue of a worker pool and its adaptive batching: calls queued in one event-loop turn go to a
 * worker together, in one postMessage. An idle worker gets whatever waits at once (at moderate
 * rates latency is one round trip); a busy one gets a second batch only when enough calls wait to
 * make it worth a message (pipelining for throughput), otherwise they coalesce until its batch
 * comes back (the pool calls `flush` then).
 */
import { leastBusy } from './slot.ts';

export interface BatchLimits {
  /** most calls sent in one postMessage */
  maxBatch: number;
  /** batches a worker may have queued at once (keeps it busy while the previous answer travels back) */
  maxInFlight: number;
  /** a busy worker gets another batch only when at least this many calls wait (else they coalesce) */
  pipelineMin: number;
}

export interface DispatchOptions<R, S> {
  limits: BatchLimits;
  /** the workers that take batches now */
  slots(): readonly S[];
  /** encodes and posts one batch (`bid` from `nextBatchId`), records it in the slot's inflight */
  send(slot: S, reqs: R[]): void;
}

export class Dispatcher<R, S extends { inflight: Map<number, R[]> }> {
  readonly #o: DispatchOptions<R, S>;
  #pending: R[] = [];
  #scheduled = false;
  #bid = 0;

  constructor(o: DispatchOptions<R, S>) {
    this.#o = o;
  }

  /** Calls queued and not sent to a worker yet. */
  get pending(): readonly R[] {
    return this.#pending;
  }

  /** A batch id: positive, wraps before it leaves the int32 range (the worker's state array). */
  nextBatchId(): number {
    return (this.#bid = (this.#bid + 1) & 0x3fffffff);
  }

  push(r: R): void {
    this.#pending.push(r);
    // At the end of this event-loop turn, not in a microtask: Node-RED delivers each message in a
    // setImmediate of its own and runs microtasks after each, so a microtask flush sent an idle
    // worker one call per postMessage; this way the calls of one turn's deliveries share a batch.
    this.#schedule();
  }

  /** Puts calls a replaced worker held back in front, in their order: they were sent before anything still pending. */
  requeue(again: R[]): void {
    this.#pending = again.concat(this.#pending);
    if (this.#pending.length) this.#schedule();
  }

  /** Empties the queue and returns what was in it and in every slot's batches (the pool stops). */
  takeAll(slots: Iterable<S>): R[] {
    const all = this.#pending;
    for (const s of slots) for (const reqs of s.inflight.values()) all.push(...reqs);
    this.#pending = [];
    return all;
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#flushBound);
  }

  readonly #flushBound = () => this.flush();

  /** Sends what waits to the least busy workers, as far as the batching limits allow. */
  flush(): void {
    this.#scheduled = false;
    const { maxBatch, maxInFlight, pipelineMin } = this.#o.limits;
    const slots = this.#o.slots();
    while (this.#pending.length && slots.length) {
      const slot = leastBusy(slots);
      const busy = slot.inflight.size;
      if (busy >= maxInFlight || (busy > 0 && this.#pending.length < pipelineMin)) break;
      const reqs = this.#pending.length <= maxBatch ? this.#pending : this.#pending.slice(0, maxBatch);
      this.#pending = reqs === this.#pending ? [] : this.#pending.slice(reqs.length);
      this.#o.send(slot, reqs);
    }
  }
}
