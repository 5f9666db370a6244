/**
 * GraphQL subscriptions from the live feed (runtime/feed): one feed listener while anyone
 * subscribes, subscribers indexed by device so an event costs only the subscribers it concerns.
 * Each subscriber is an async iterator with a bounded queue: a slow client loses its oldest
 * events (counted), it never grows memory or slows the pipeline.
 */
import type { Feed, FeedEvent } from '../feed/index.ts';

export type Topic = 'telemetry' | 'status' | 'event' | 'alarm';

export interface SubscriptionFilter {
  device_id?: string | null;
  product_key?: string | null;
  metrics?: string[] | null;
  event?: string | null;
  level?: string | null;
}

/** A subscriber's queue, consumed by graphql-ws / yoga as an AsyncIterator. */
class Queue implements AsyncIterableIterator<unknown> {
  readonly filter: SubscriptionFilter;
  dropped = 0;
  #buf: unknown[] = [];
  #waiting: ((r: IteratorResult<unknown>) => void) | undefined;
  #done = false;
  readonly #max: number;
  readonly #onClose: () => void;

  constructor(filter: SubscriptionFilter, max: number, onClose: () => void) {
    this.filter = filter;
    this.#max = max;
    this.#onClose = onClose;
  }

  push(v: unknown): void {
    if (this.#done) return;
    const w = this.#waiting;
    if (w) {
      this.#waiting = undefined;
      w({ value: v, done: false });
      return;
    }
    this.#buf.push(v);
    if (this.#buf.length > this.#max) {
      this.#buf.shift();
      this.dropped++;
    }
  }

  next(): Promise<IteratorResult<unknown>> {
    if (this.#buf.length) return Promise.resolve({ value: this.#buf.shift(), done: false });
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.#waiting = resolve));
  }

  return(): Promise<IteratorResult<unknown>> {
    if (!this.#done) {
      this.#done = true;
      this.#buf = [];
      this.#onClose();
      this.#waiting?.({ value: undefined, done: true });
      this.#waiting = undefined;
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(err: unknown): Promise<IteratorResult<unknown>> {
    void this.return();
    return Promise.reject(err);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

interface Index {
  byDevice: Map<string, Set<Queue>>;
  any: Set<Queue>;
}

export interface Hub {
  subscribe(topic: Topic, filter: SubscriptionFilter): AsyncIterableIterator<unknown>;
  /** subscribers now */
  size(): number;
  /** events a slow subscriber lost */
  dropped(): number;
  close(): void;
}

/** The GraphQL shape of a feed event for one subscriber, or null when its filter excludes it. */
function shape(topic: Topic, ev: FeedEvent, f: SubscriptionFilter): unknown {
  if (f.product_key && ev.product_key !== f.product_key) return null;
  switch (topic) {
    case 'telemetry': {
      let values = (ev.values ?? {}) as Record<string, unknown>;
      if (f.metrics?.length) {
        const picked: Record<string, unknown> = {};
        let any = false;
        for (const m of f.metrics) {
          if (m in values) {
            picked[m] = values[m];
            any = true;
          }
        }
        if (!any) return null;
        values = picked;
      }
      return { device_id: ev.device_id, product_key: ev.product_key ?? null, ts: ev.ts, values, msg_id: ev.msg_id ?? null };
    }
    case 'status':
      return { device_id: ev.device_id, product_key: ev.product_key ?? null, ts: ev.ts, status: ev.status, reason: ev.reason ?? null };
    case 'event':
      if (f.event && ev.event_id !== f.event) return null;
      return ev;
    case 'alarm': {
      const alarm = ev.alarm as { level?: string };
      if (f.level && alarm?.level !== f.level) return null;
      return { event: ev.event, ts: ev.ts, alarm };
    }
  }
}

export function createHub(feed: Pick<Feed, 'listen'>, opts: { queueMax?: number } = {}): Hub {
  const queueMax = opts.queueMax ?? 1000;
  const topics = new Map<Topic, Index>((['telemetry', 'status', 'event', 'alarm'] as Topic[]).map((t) => [t, { byDevice: new Map(), any: new Set() }]));
  let count = 0;
  let lost = 0;
  let unlisten: (() => void) | undefined;

  const deliver = (topic: Topic, ev: FeedEvent, set: Set<Queue> | undefined) => {
    if (!set) return;
    for (const q of set) {
      const out = shape(topic, ev, q.filter);
      if (out !== null) q.push(out);
    }
  };

  const onEvent = (ev: FeedEvent) => {
    const topic = ev.type === 'stream' ? undefined : (ev.type as Topic);
    const idx = topic && topics.get(topic);
    if (!idx) return;
    if (ev.device_id !== undefined) deliver(topic!, ev, idx.byDevice.get(ev.device_id));
    deliver(topic!, ev, idx.any);
  };

  return {
    subscribe(topic, filter) {
      const idx = topics.get(topic)!;
      const device = filter.device_id ?? undefined;
      const q: Queue = new Queue(filter, queueMax, () => {
        lost += q.dropped;
        count--;
        if (device === undefined) idx.any.delete(q);
        else {
          const set = idx.byDevice.get(device);
          set?.delete(q);
          if (set?.size === 0) idx.byDevice.delete(device);
        }
        if (count === 0) {
          unlisten?.();
          unlisten = undefined;
        }
      });
      if (device === undefined) idx.any.add(q);
      else {
        let set = idx.byDevice.get(device);
        if (!set) idx.byDevice.set(device, (set = new Set()));
        set.add(q);
      }
      count++;
      // Listening only while someone subscribes: with no listener the pipeline skips building feed events.
      unlisten ??= feed.listen(onEvent);
      return q;
    },
    size: () => count,
    dropped: () => lost,
    close() {
      for (const idx of topics.values()) {
        for (const set of idx.byDevice.values()) for (const q of [...set]) void q.return();
        for (const q of [...idx.any]) void q.return();
      }
    },
  };
}
