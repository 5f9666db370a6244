/**
 * The traces of this process's uplink ids, in columns: slot `seq % size` of typed arrays and arrays
 * of references, not an object graph per message. The ring holds the last `size` uplinks (20,000 by
 * default), so each trace outlives several young-generation collections: kept as objects (the trace,
 * its spans array, one object per span: ~750 bytes) they were what every scavenge copied and what
 * then filled the old generation, about half of the main thread's GC time at 15–20k msg/s
 * (docs/benchmarks.md "Session 9"). Here a trace keeps only what callers made anyway: the span's
 * `detail` object and strings. Objects are built when a trace is read.
 */
import type { MessageTrace, TraceSpan, TraceStart } from './index.ts';

/** spans kept in the columns per trace; more (up to maxSpans) go to a per-slot list */
const INLINE_SPANS = 6;
/** distinct devices whose last topic string is shared between their traces */
const MAX_TOPICS = 65_536;

export class TraceRing {
  readonly size: number;
  readonly #maxSpans: number;
  /** sequence number per slot, -1 while empty */
  readonly #seq: Float64Array;
  readonly #receivedAt: Float64Array;
  readonly #bytes: Float64Array;
  readonly #spanCount: Uint8Array;
  readonly #dropped: Uint32Array;
  /** per slot: device id, product key, transport, topic (references to strings the uplink already had) */
  readonly #strings: (string | undefined)[];
  /** per inline span: finished at, took (NaN: not given), ok */
  readonly #spanAt: Float64Array;
  readonly #spanTook: Float64Array;
  readonly #spanOk: Uint8Array;
  /** per inline span: stage, detail, error */
  readonly #spanRefs: unknown[];
  /** spans past INLINE_SPANS, per slot */
  readonly #more = new Map<number, TraceSpan[]>();
  /** a device's last topic: an uplink's topic is a new string each time, equal to the last one */
  readonly #topics = new Map<string, string>();
  #filled = 0;
  #lastSlot = -1;

  constructor(size: number, maxSpans: number) {
    this.size = size;
    this.#maxSpans = maxSpans;
    this.#seq = new Float64Array(size).fill(-1);
    this.#receivedAt = new Float64Array(size);
    this.#bytes = new Float64Array(size);
    this.#spanCount = new Uint8Array(size);
    this.#dropped = new Uint32Array(size);
    this.#strings = new Array(size * 4);
    const inline = size * INLINE_SPANS;
    this.#spanAt = new Float64Array(inline);
    this.#spanTook = new Float64Array(inline);
    this.#spanOk = new Uint8Array(inline);
    this.#spanRefs = new Array(inline * 3);
  }

  /** slots holding a trace */
  get filled(): number {
    return this.#filled;
  }

  /** The slot of `seq` when it holds that trace, else -1. */
  slotOf(seq: number): number {
    const slot = seq % this.size;
    return this.#seq[slot] === seq ? slot : -1;
  }

  /** Starts the trace of `seq` with its ingress span; answers its slot, or -1 when it is already there. */
  begin(seq: number, m: TraceStart): number {
    const slot = seq % this.size;
    const held = this.#seq[slot]!;
    if (held === seq) return -1;
    if (held < 0) this.#filled++;
    else this.#more.delete(slot);
    this.#seq[slot] = seq;
    this.#lastSlot = slot;
    this.#receivedAt[slot] = m.ts;
    this.#bytes[slot] = m.bytes;
    this.#dropped[slot] = 0;
    const s = slot * 4;
    this.#strings[s] = m.deviceId;
    this.#strings[s + 1] = m.productKey;
    this.#strings[s + 2] = m.transport;
    this.#strings[s + 3] = this.#sharedTopic(m.deviceId, m.topic);
    this.#put(slot, 0, 'ingress', m.ts, undefined, true, undefined, undefined);
    this.#spanCount[slot] = 1;
    return slot;
  }

  /** Appends a span to the trace in `slot`; false when the trace has maxSpans already (counted as dropped). */
  span(slot: number, span: Omit<TraceSpan, 'at'> & { at?: number }): boolean {
    const n = this.#spanCount[slot]! + (this.#more.get(slot)?.length ?? 0);
    if (n >= this.#maxSpans) {
      this.#dropped[slot]!++;
      return false;
    }
    const at = span.at ?? Date.now();
    if (n < INLINE_SPANS) {
      this.#put(slot, n, span.stage, at, span.took_ms, span.ok, span.detail, span.error);
      this.#spanCount[slot] = n + 1;
      return true;
    }
    // The caller's object becomes the span (callers pass a fresh literal).
    const full = span as TraceSpan;
    full.at = at;
    let list = this.#more.get(slot);
    if (!list) this.#more.set(slot, (list = []));
    list.push(full);
    return true;
  }

  /** Sequence number of the trace in `slot`. */
  seqAt(slot: number): number {
    return this.#seq[slot]!;
  }

  /** The trace in `slot` as the API shows it. */
  read(slot: number, id: string): MessageTrace {
    const s = slot * 4;
    const spans: TraceSpan[] = [];
    const count = this.#spanCount[slot]!;
    for (let j = 0; j < count; j++) spans.push(this.#readSpan(slot, j));
    const more = this.#more.get(slot);
    if (more) spans.push(...more);
    const t: MessageTrace = {
      id,
      device_id: this.#strings[s]!,
      product_key: this.#strings[s + 1]!,
      transport: this.#strings[s + 2]!,
      topic: this.#strings[s + 3]!,
      received_at: this.#receivedAt[slot]!,
      bytes: this.#bytes[slot]!,
      spans,
    };
    if (this.#dropped[slot]) t.dropped_spans = this.#dropped[slot];
    return t;
  }

  /** Slots of the device's traces, newest first, at most `last`. */
  byDevice(deviceId: string, last: number): number[] {
    const out: number[] = [];
    if (this.#lastSlot < 0) return out;
    for (let n = 0, i = this.#lastSlot; n < this.size && out.length < last; n++) {
      const seq = this.#seq[i]!;
      if (seq < 0) break;
      if (this.#strings[i * 4] === deviceId) out.push(i);
      i = i === 0 ? this.size - 1 : i - 1;
    }
    return out;
  }

  #put(slot: number, j: number, stage: string, at: number, took: number | undefined, ok: boolean, detail: unknown, error: string | undefined): void {
    const k = slot * INLINE_SPANS + j;
    this.#spanAt[k] = at;
    this.#spanTook[k] = took ?? NaN;
    this.#spanOk[k] = ok ? 1 : 0;
    this.#spanRefs[k * 3] = stage;
    this.#spanRefs[k * 3 + 1] = detail;
    this.#spanRefs[k * 3 + 2] = error;
  }

  #readSpan(slot: number, j: number): TraceSpan {
    const k = slot * INLINE_SPANS + j;
    const span: TraceSpan = { stage: this.#spanRefs[k * 3] as string, at: this.#spanAt[k]!, ok: this.#spanOk[k] === 1 };
    const took = this.#spanTook[k]!;
    if (!Number.isNaN(took)) span.took_ms = took;
    const detail = this.#spanRefs[k * 3 + 1];
    if (detail !== undefined) span.detail = detail as Record<string, unknown>;
    const error = this.#spanRefs[k * 3 + 2];
    if (error !== undefined) span.error = error as string;
    return span;
  }

  #sharedTopic(deviceId: string, topic: string): string {
    const last = this.#topics.get(deviceId);
    if (last === topic) return last;
    if (this.#topics.size >= MAX_TOPICS) this.#topics.clear();
    this.#topics.set(deviceId, topic);
    return topic;
  }
}
