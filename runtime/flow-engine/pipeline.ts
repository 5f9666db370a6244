/**
 * Knows when an uplink has finished its way through the flows, so that ingress can apply
 * backpressure (ingress stops reading device sockets while the pipeline is behind: docs/broker.md "Backpressure")
 * and the receive→done latency can be measured.
 *
 * Node-RED has no "message finished" event, but its hooks see every delivery (`preDeliver`, run
 * synchronously inside `node.send`) and every node completion (`onComplete`). A tracked message is
 * finished when its outstanding deliveries fall back to zero: the last node that held it completed
 * without passing it on (stored, filtered out, failed). A message that never completes (a node
 * that forgets `done`) is released by a deadline, so nothing waits forever.
 */
import type { Histogram } from 'prom-client';
import type { Tally } from '../metrics/index.ts';
import { messageSeq } from '../bus/index.ts';
import { BATCH_NODE_TYPES, batchItems } from './batch.ts';

/**
 * Messages tracked by their sequence number in a ring (this process's uplink ids, runtime/bus
 * `messageSeq`), each found with one array read: a Map keyed by the id strings cost a hash-table walk
 * and a string compare per lookup, six lookups per uplink, mostly cache misses in a busy process
 * (docs/benchmarks.md "Session 10"). Other ids, and one whose slot is still held, go to a Map.
 * The ring (256 KB) is made on the first tracked message, so an idle FLUX does not hold it.
 */
const RING_SIZE = 1 << 15;
const RING_MASK = RING_SIZE - 1;

/**
 * What `track` answers: a thenable settled when the message has left the flows. One small object per
 * message (no Promise, no closure, no timer): the device bus only calls `then(ok, fail)` on it once.
 */
export interface Finished {
  then(ok: () => void, fail?: (err: unknown) => void): void;
}

/** One tracked message; also the thenable handed to the bus. */
class Tracked implements Finished {
  readonly id: string;
  /** its sequence number, or -1 (then it is in the Map) */
  seq = -1;
  outstanding = 0;
  failed = false;
  readonly receivedAt: number;
  /** when the message was tracked (ms, monotonic enough: Date.now), for the deadline sweep */
  readonly at: number;
  settled = false;
  cbs: (() => void)[] | (() => void) | undefined = undefined;
  constructor(id: string, receivedAt: number, at: number) {
    this.id = id;
    this.receivedAt = receivedAt;
    this.at = at;
  }
  then(ok: () => void): void {
    if (this.settled) {
      queueMicrotask(ok);
      return;
    }
    const c = this.cbs;
    if (c === undefined) this.cbs = ok;
    else if (typeof c === 'function') this.cbs = [c, ok];
    else c.push(ok);
  }
  settle(): void {
    this.settled = true;
    const c = this.cbs;
    this.cbs = undefined;
    if (c === undefined) return;
    if (typeof c === 'function') c();
    else for (const f of c) f();
  }
}

export interface PipelineTracker {
  /**
   * Starts tracking message `msgId` (received at `receivedAt`, ms epoch). Call before the first
   * `node.send` of it; answers a thenable settled when the message has left the flows.
   */
  track(msgId: string, receivedAt: number): Finished;
  /** Call after the first `node.send` of `msgId`: a message that went nowhere is finished at once. */
  sent(msgId: string): void;
  /**
   * Marks one uplink of a batch as failed (its node reported the error to the flow's catch nodes
   * with `node.error(err, item)` and sends it no further): it finishes as failed.
   */
  fail(msgId: string): void;
  /** messages entered but not finished */
  inFlight(): number;
}

interface DeliverEvent {
  msg?: { _msgid?: string };
  destination?: { node?: { type?: string; receive(msg: unknown): void } };
}

export interface HookApi {
  add(id: string, cb: (ev: any) => void): void;
  remove(id: string): void;
}

export interface PipelineTrackerOptions {
  /** a message not finished after this long is released anyway (ms) */
  deadlineMs?: number;
  latency: Histogram;
  /** uplinks finished, by outcome (runtime/metrics `tallyCounter`: counted without allocating) */
  finished: { tally(labels: { outcome: 'done' | 'failed' | 'expired' }): Tally };
}

export function createPipelineTracker(hooks: HookApi, opts: PipelineTrackerOptions): PipelineTracker & { close(): void } {
  const deadlineMs = opts.deadlineMs ?? 10_000;
  let ring: (Tracked | undefined)[] | undefined;
  const others = new Map<string, Tracked>();
  // Tracking order, for the deadline sweep: finished entries leave from the front as they finish
  // (mostly in order), so it holds what is in flight, not what finished.
  let order: (Tracked | undefined)[] = [];
  let head = 0;
  let inFlight = 0;
  const done = opts.finished.tally({ outcome: 'done' });
  const failed = opts.finished.tally({ outcome: 'failed' });
  const expired = opts.finished.tally({ outcome: 'expired' });
  // bound once: prom-client's unbound observe makes a closure and a labels object per call
  const latency = opts.latency.labels();
  // One sweep timer instead of a timer per message (a Timeout and its list entry for every uplink).
  let sweeper: NodeJS.Timeout | undefined;

  const lookup = (id: string): Tracked | undefined => {
    const seq = messageSeq(id);
    if (seq >= 0 && ring !== undefined) {
      const t = ring[seq & RING_MASK];
      if (t !== undefined && t.seq === seq) return t;
    }
    return others.size === 0 ? undefined : others.get(id);
  };

  const dropFinishedFront = () => {
    while (head < order.length && order[head]!.settled) order[head++] = undefined;
    if (head === order.length) {
      order = [];
      head = 0;
    } else if (head > 4096 && head * 2 > order.length) {
      order = order.slice(head);
      head = 0;
    }
  };

  const finish = (t: Tracked, outcome: 'done' | 'failed' | 'expired') => {
    if (t.seq >= 0) {
      if (ring !== undefined) ring[t.seq & RING_MASK] = undefined;
    } else others.delete(t.id);
    inFlight--;
    if (outcome === 'done') {
      latency.observe((Date.now() - t.receivedAt) / 1000);
      done.add();
    } else (outcome === 'failed' ? failed : expired).add();
    t.settle();
    if (order[head] === t) dropFinishedFront();
    if (inFlight === 0 && sweeper) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };

  const sweep = () => {
    const limit = Date.now() - deadlineMs;
    dropFinishedFront();
    // one message held long (a user's delay node) keeps the finished ones behind it: drop them here
    if (order.length - head > 2 * inFlight + 1024) {
      order = order.slice(head).filter((t) => t !== undefined && !t.settled);
      head = 0;
    }
    while (head < order.length) {
      const t = order[head]!;
      if (!t.settled) {
        if (t.at > limit) break;
        finish(t, 'expired');
      }
      dropFinishedFront();
    }
  };

  const delivered = (id: string | undefined) => {
    if (id === undefined) return;
    const t = lookup(id);
    if (t) t.outstanding++;
  };
  const completed = (id: string | undefined, error: unknown) => {
    if (id === undefined) return;
    const t = lookup(id);
    if (!t) return;
    if (error) t.failed = true;
    if (--t.outstanding <= 0) finish(t, t.failed ? 'failed' : 'done');
  };
  hooks.add('preDeliver.flux-pipeline', (ev: DeliverEvent) => {
    const items = batchItems(ev.msg);
    if (items === undefined) return delivered(ev.msg?._msgid);
    for (const item of items) delivered(item._msgid);
  });
  // A batch reaching a node that takes messages one by one (any way it arrives: a wire, a `complete`
  // node, a link) is received as its items, each a message of its own (batch.ts).
  hooks.add('onReceive.flux-pipeline', (ev: DeliverEvent) => {
    const items = batchItems(ev.msg);
    const node = ev.destination?.node;
    if (items === undefined || !node || BATCH_NODE_TYPES.has(node.type ?? '')) return;
    for (const item of items) node.receive(item);
    return false;
  });
  hooks.add('onComplete.flux-pipeline', (ev: { msg?: { _msgid?: string }; error?: unknown }) => {
    const items = batchItems(ev.msg);
    if (items === undefined) return completed(ev.msg?._msgid, ev.error);
    for (const item of items) completed(item._msgid, ev.error);
  });

  return {
    track(msgId, receivedAt) {
      // Several `flux device in` nodes may take the same uplink: they share one entry.
      const existing = lookup(msgId);
      if (existing) return existing;
      const t = new Tracked(msgId, receivedAt, Date.now());
      const seq = messageSeq(msgId);
      ring ??= new Array<Tracked | undefined>(RING_SIZE);
      if (seq >= 0 && ring[seq & RING_MASK] === undefined) {
        t.seq = seq;
        ring[seq & RING_MASK] = t;
      } else others.set(msgId, t);
      order.push(t);
      inFlight++;
      // a deadline is checked within deadlineMs / 4 of passing
      if (!sweeper) {
        sweeper = setInterval(sweep, Math.max(1, Math.min(1000, deadlineMs / 4)));
        sweeper.unref();
      }
      return t;
    },
    sent(msgId) {
      const t = lookup(msgId);
      if (t && t.outstanding <= 0) finish(t, 'done');
    },
    fail(msgId) {
      const t = lookup(msgId);
      if (t) t.failed = true;
    },
    inFlight: () => inFlight,
    close() {
      hooks.remove('preDeliver.flux-pipeline');
      hooks.remove('onReceive.flux-pipeline');
      hooks.remove('onComplete.flux-pipeline');
      // Messages still in the flows when they stop are not finished: they stay unsettled, so the
      // uplink log does not count them as handled and processes them again on the next start.
      ring = undefined;
      others.clear();
      order = [];
      head = 0;
      inFlight = 0;
      clearInterval(sweeper);
      sweeper = undefined;
    },
  };
}
