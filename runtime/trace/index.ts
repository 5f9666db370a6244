/**
 * @module trace — the per-message trace, always on: every uplink gets an id; ingress,
 * decode, rules, store and actions append spans. Bounded: the newest `maxMessages` traces are kept
 * (oldest evicted first), each with at most `maxSpans` spans, so memory stays flat at any rate.
 */

import { messageIdOf, messageSeq } from '../bus/index.ts';
import { TraceRing } from './ring.ts';

export interface TraceSpan {
  /** ingress | decode | rule | store | action | error … */
  stage: string;
  /** ms since epoch when the stage finished */
  at: number;
  /** how long the stage took, ms */
  took_ms?: number;
  ok: boolean;
  /** e.g. `{ plugin: 'modbus', version: 3 }`, `{ rule: 'hot', result: true }`, `{ batch: 812 }` */
  detail?: Record<string, unknown>;
  error?: string;
}

export interface MessageTrace {
  id: string;
  device_id: string;
  product_key: string;
  transport: string;
  topic: string;
  received_at: number;
  bytes: number;
  spans: TraceSpan[];
  /** spans dropped because the message exceeded maxSpans */
  dropped_spans?: number;
}

export interface TraceStart {
  id: string;
  deviceId: string;
  productKey: string;
  transport: string;
  topic: string;
  ts: number;
  bytes: number;
}

/** Sees every trace as it is written (the OpenTelemetry exporter is one). Must not throw or block. */
export interface TraceObserver {
  begin(t: MessageTrace): void;
  span(t: MessageTrace, span: TraceSpan): void;
}

export interface Tracer {
  begin(m: TraceStart): void;
  observe(o: TraceObserver | undefined): void;
  /** Appends a span to message `id`; a message no longer (or never) traced is ignored. */
  span(id: string | undefined, span: Omit<TraceSpan, 'at'> & { at?: number }): void;
  get(id: string): MessageTrace | undefined;
  /** the device's newest traces, newest first */
  byDevice(deviceId: string, last: number): MessageTrace[];
  readonly size: number;
}

/**
 * Traces as the API reads them: this process's tracer, or in a cluster this node's merged with the
 * other nodes' (runtime/cluster/traces.ts).
 */
export interface TraceLookup {
  get(id: string): Promise<MessageTrace | undefined>;
  /** the device's newest traces, newest first */
  byDevice(deviceId: string, last: number): Promise<MessageTrace[]>;
}

export function localTraceLookup(tracer: Tracer): TraceLookup {
  return {
    get: async (id) => tracer.get(id),
    byDevice: async (deviceId, last) => tracer.byDevice(deviceId, last),
  };
}

export interface TracerOptions {
  maxMessages?: number;
  maxSpans?: number;
}

export function createTracer(opts: TracerOptions = {}): Tracer {
  const maxMessages = Math.max(1, opts.maxMessages ?? 20_000);
  const maxSpans = opts.maxSpans ?? 32;
  // Uplink ids carry a sequence number (bus newMessageId): their trace lives in slot seq % max of a
  // ring of columns (ring.ts), found without hashing and overwritten, not deleted, when evicted. A
  // Map of 20k ids churned at every uplink cost ~5% of the main thread. Made on the first uplink: an
  // idle FLUX does not hold its ~4 MB.
  let ring: TraceRing | undefined;
  // Other ids (a caller's own, another node's): a Map with its eviction order as a ring of ids
  // (Map.keys().next() walks the deleted entries V8 keeps at the front of the table: 28% of the CPU
  // at 40k msg/s).
  const others = new Map<string, MessageTrace>();
  const order: (string | undefined)[] = new Array(maxMessages);
  let head = 0;
  let observer: TraceObserver | undefined;

  return {
    observe(o) {
      observer = o;
    },
    begin(m) {
      const seq = messageSeq(m.id);
      if (seq >= 0) {
        const slot = (ring ??= new TraceRing(maxMessages, maxSpans)).begin(seq, m);
        if (slot >= 0 && observer) observer.begin(ring.read(slot, m.id));
        return;
      }
      if (others.has(m.id)) return;
      const trace: MessageTrace = {
        id: m.id,
        device_id: m.deviceId,
        product_key: m.productKey,
        transport: m.transport,
        topic: m.topic,
        received_at: m.ts,
        bytes: m.bytes,
        spans: [{ stage: 'ingress', at: m.ts, ok: true }],
      };
      const oldest = order[head];
      if (oldest !== undefined) others.delete(oldest);
      order[head] = m.id;
      head = head + 1 === maxMessages ? 0 : head + 1;
      others.set(m.id, trace);
      observer?.begin(trace);
    },
    span(id, span) {
      if (!id) return;
      const seq = messageSeq(id);
      if (seq >= 0) {
        if (!ring) return;
        const slot = ring.slotOf(seq);
        if (slot < 0 || !ring.span(slot, span)) return;
        if (observer) {
          const t = ring.read(slot, id);
          observer.span(t, t.spans.at(-1)!);
        }
        return;
      }
      const t = others.get(id);
      if (!t) return;
      if (t.spans.length >= maxSpans) {
        t.dropped_spans = (t.dropped_spans ?? 0) + 1;
        return;
      }
      // The caller's object becomes the span (callers pass a fresh literal): no copy per span.
      const full = span as TraceSpan;
      if (full.at === undefined) full.at = Date.now();
      t.spans.push(full);
      observer?.span(t, full);
    },
    get(id) {
      const seq = messageSeq(id);
      if (seq < 0) return others.get(id);
      const slot = ring ? ring.slotOf(seq) : -1;
      return slot < 0 ? undefined : ring?.read(slot, id);
    },
    byDevice(deviceId, last) {
      // Newest first, walking both rings backwards: no per-device index to keep on the hot path
      // (one cost ~80 MB of ids at 1000 devices); a full walk is 20k reads, well under a millisecond.
      const out: MessageTrace[] = [];
      if (ring) for (const slot of ring.byDevice(deviceId, last)) out.push(ring.read(slot, messageIdOf(ring.seqAt(slot))));
      if (others.size > 0) {
        const mine: MessageTrace[] = [];
        for (let n = 0, i = head; n < maxMessages && mine.length < last; n++) {
          i = i === 0 ? maxMessages - 1 : i - 1;
          const id = order[i];
          if (id === undefined) break;
          const t = others.get(id);
          if (t && t.device_id === deviceId) mine.push(t);
        }
        if (out.length === 0) return mine;
        out.push(...mine);
        out.sort((a, b) => b.received_at - a.received_at);
        out.length = Math.min(out.length, last);
      }
      return out;
    },
    get size() {
      return (ring?.filled ?? 0) + others.size;
    },
  };
}
