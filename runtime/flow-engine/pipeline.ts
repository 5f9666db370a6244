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
import type { Histogram, Counter } from 'prom-client';
import { BATCH_NODE_TYPES, batchItems } from './batch.ts';

/**
 * What `track` answers: a thenable settled when the message has left the flows. One small object per
 * message (no Promise, no closure, no timer): the device bus only calls `then(ok, fail)` on it once.
 */
export interface Finished {
  then(ok: () => void, fail?: (err: unknown) => void): void;
}

/** One tracked message; also the thenable handed to the bus. */
class Tracked implements Finished {
  outstanding = 0;
  failed = false;
  readonly receivedAt: number;
  /** when the message was tracked (ms, monotonic enough: Date.now), for the deadline sweep */
  readonly at: number;
  settled = false;
  cbs: (() => void)[] | (() => void) | undefined = undefined;
  constructor(receivedAt: number, at: number) {
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
  finished: Counter;
}

export function createPipelineTracker(hooks: HookApi, opts: PipelineTrackerOptions): PipelineTracker & { close(): void } {
  const deadlineMs = opts.deadlineMs ?? 10_000;
  // Insertion order is tracking order: the deadline sweep stops at the first message still in time.
  const tracked = new Map<string, Tracked>();
  const done = opts.finished.labels({ outcome: 'done' });
  const failed = opts.finished.labels({ outcome: 'failed' });
  const expired = opts.finished.labels({ outcome: 'expired' });
  // One sweep timer instead of a timer per message (a Timeout and its list entry for every uplink).
  let sweeper: NodeJS.Timeout | undefined;

  const finish = (id: string, t: Tracked, outcome: 'done' | 'failed' | 'expired') => {
    tracked.delete(id);
    if (outcome === 'done') {
      opts.latency.observe((Date.now() - t.receivedAt) / 1000);
      done.inc();
    } else (outcome === 'failed' ? failed : expired).inc();
    t.settle();
    if (tracked.size === 0 && sweeper) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };

  const sweep = () => {
    const limit = Date.now() - deadlineMs;
    for (const [id, t] of tracked) {
      if (t.at > limit) break;
      finish(id, t, 'expired');
    }
  };

  const delivered = (id: string | undefined) => {
    if (id === undefined) return;
    const t = tracked.get(id);
    if (t) t.outstanding++;
  };
  const completed = (id: string | undefined, error: unknown) => {
    if (id === undefined) return;
    const t = tracked.get(id);
    if (!t) return;
    if (error) t.failed = true;
    if (--t.outstanding <= 0) finish(id, t, t.failed ? 'failed' : 'done');
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
      const existing = tracked.get(msgId);
      if (existing) return existing;
      const t = new Tracked(receivedAt, Date.now());
      tracked.set(msgId, t);
      // a deadline is checked within deadlineMs / 4 of passing
      if (!sweeper) {
        sweeper = setInterval(sweep, Math.max(1, Math.min(1000, deadlineMs / 4)));
        sweeper.unref();
      }
      return t;
    },
    sent(msgId) {
      const t = tracked.get(msgId);
      if (t && t.outstanding <= 0) finish(msgId, t, 'done');
    },
    fail(msgId) {
      const t = tracked.get(msgId);
      if (t) t.failed = true;
    },
    inFlight: () => tracked.size,
    close() {
      hooks.remove('preDeliver.flux-pipeline');
      hooks.remove('onReceive.flux-pipeline');
      hooks.remove('onComplete.flux-pipeline');
      // Messages still in the flows when they stop are not finished: they stay unsettled, so the
      // uplink log does not count them as handled and processes them again on the next start.
      tracked.clear();
      clearInterval(sweeper);
      sweeper = undefined;
    },
  };
}
