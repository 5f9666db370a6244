/**
 * Knows when an uplink has finished its way through the flows, so that ingress can apply
 * backpressure (issue 7: "ingress stops reading from device sockets when the pipeline is behind")
 * and the receive→done latency can be measured.
 *
 * Node-RED has no "message finished" event, but its hooks see every delivery (`preDeliver`, run
 * synchronously inside `node.send`) and every node completion (`onComplete`). A tracked message is
 * finished when its outstanding deliveries fall back to zero: the last node that held it completed
 * without passing it on (stored, filtered out, failed). A message that never completes (a node
 * that forgets `done`) is released by a deadline, so nothing waits forever.
 */
import type { Histogram, Counter } from 'prom-client';

interface Tracked {
  promise: Promise<void>;
  outstanding: number;
  receivedAt: number;
  failed: boolean;
  resolve: () => void;
  timer: NodeJS.Timeout;
}

export interface PipelineTracker {
  /**
   * Starts tracking message `msgId` (received at `receivedAt`, ms epoch). Call before the first
   * `node.send` of it; answers a promise settled when the message has left the flows.
   */
  track(msgId: string, receivedAt: number): Promise<void>;
  /** Call after the first `node.send` of `msgId`: a message that went nowhere is finished at once. */
  sent(msgId: string): void;
  /** messages entered but not finished */
  inFlight(): number;
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
  const tracked = new Map<string, Tracked>();

  const finish = (id: string, t: Tracked, outcome: 'done' | 'failed' | 'expired') => {
    tracked.delete(id);
    clearTimeout(t.timer);
    if (outcome === 'done') opts.latency.observe((Date.now() - t.receivedAt) / 1000);
    opts.finished.inc({ outcome });
    t.resolve();
  };

  hooks.add('preDeliver.flux-pipeline', (ev: { msg?: { _msgid?: string } }) => {
    const id = ev.msg?._msgid;
    if (id === undefined) return;
    const t = tracked.get(id);
    if (t) t.outstanding++;
  });
  hooks.add('onComplete.flux-pipeline', (ev: { msg?: { _msgid?: string }; error?: unknown }) => {
    const id = ev.msg?._msgid;
    if (id === undefined) return;
    const t = tracked.get(id);
    if (!t) return;
    if (ev.error) t.failed = true;
    if (--t.outstanding <= 0) finish(id, t, t.failed ? 'failed' : 'done');
  });

  return {
    track(msgId, receivedAt) {
      // Several `flux device in` nodes may take the same uplink: they share one entry.
      const existing = tracked.get(msgId);
      if (existing) return existing.promise;
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      const t: Tracked = {
        promise,
        outstanding: 0,
        receivedAt,
        failed: false,
        resolve,
        timer: setTimeout(() => {
          if (tracked.get(msgId) === t) finish(msgId, t, 'expired');
        }, deadlineMs),
      };
      tracked.set(msgId, t);
      return promise;
    },
    sent(msgId) {
      const t = tracked.get(msgId);
      if (t && t.outstanding <= 0) finish(msgId, t, 'done');
    },
    inFlight: () => tracked.size,
    close() {
      hooks.remove('preDeliver.flux-pipeline');
      hooks.remove('onComplete.flux-pipeline');
      for (const [id, t] of tracked) finish(id, t, 'expired');
    },
  };
}
