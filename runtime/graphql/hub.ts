/**
 * GraphQL subscriptions from the live feed (runtime/feed), fanned out by group. A group is every
 * subscription of one document, operation and variable values: they get the same result for an
 * event, so the group executes and serialises it once and writes the same JSON to each member's
 * socket (behind the member's own `{"id":…}` prefix). Groups are indexed by the device, else the
 * product key, their filter names, so an event only visits the groups it can concern.
 *
 * The hub knows nothing of GraphQL: a group renders a payload through the function it was created
 * with (runtime/graphql/subscriptions.ts). Results do not depend on who subscribed (every role reads
 * every subscription alike); a per-user view of the data would have to join the group key.
 */
import type { Feed, FeedEvent } from '../feed/index.ts';
import type { SocketOutlet } from './outlet.ts';

export type Topic = 'telemetry' | 'status' | 'event' | 'alarm';
export const TOPICS: readonly Topic[] = ['telemetry', 'status', 'event', 'alarm'];

export interface SubscriptionFilter {
  device_id?: string | null;
  product_key?: string | null;
  metrics?: string[] | null;
  event?: string | null;
  level?: string | null;
}

/** A group's result for a payload as JSON (an ExecutionResult), or null for nothing to send. */
export type Render = (payload: unknown) => string | null | Promise<string | null>;

export interface Member {
  outlet: SocketOutlet;
  /** `{"id":<the client's subscription id>,"type":"next","payload":` */
  prefix: string;
}

interface Group {
  key: string;
  topic: Topic;
  filter: SubscriptionFilter;
  render: Render;
  members: Set<Member>;
}

interface Index {
  byDevice: Map<string, Set<Group>>;
  byProduct: Map<string, Set<Group>>;
  any: Set<Group>;
}

export interface SubscribeRequest {
  topic: Topic;
  filter: SubscriptionFilter;
  /** equal keys get equal results: document, operation name and variable values */
  key: string;
  /** used when this subscription starts its group */
  render: () => Render;
  member: Member;
}

export interface HubStats {
  subscriptions: number;
  groups: number;
  /** results written to sockets */
  delivered: number;
  /** results a slow socket missed */
  dropped: number;
  /** events whose rendering failed (logged) */
  failed: number;
}

/** Which events the hub's groups can concern: those of these devices or products, or any (runtime/graphql/socket-process.ts relays only these). */
export interface HubInterest {
  any: boolean;
  devices: string[];
  products: string[];
}

export interface Hub {
  /** Joins (or starts) the request's group; the iterator never yields, its return() leaves. */
  subscribe(req: SubscribeRequest): AsyncIterableIterator<never>;
  stats(): HubStats;
  interest(): HubInterest;
  /** counts a result a slow socket missed */
  countDrop(): void;
  /** Ends every subscription (graphql-ws then sends each client `complete`). */
  close(): void;
}

/** A subscription's handle for graphql-ws: it never yields (results go straight to the socket); return() leaves the group. */
class Handle implements AsyncIterableIterator<never> {
  #done = false;
  #wake: ((r: IteratorResult<never>) => void) | undefined;
  readonly #leave: () => void;

  constructor(leave: () => void) {
    this.#leave = leave;
  }

  next(): Promise<IteratorResult<never>> {
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.#wake = resolve));
  }

  return(): Promise<IteratorResult<never>> {
    if (!this.#done) {
      this.#done = true;
      this.#leave();
      this.#wake?.({ value: undefined, done: true });
      this.#wake = undefined;
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(err: unknown): Promise<IteratorResult<never>> {
    void this.return();
    return Promise.reject(err);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** The GraphQL shape of a feed event for a group's filter, or null when the filter excludes it. */
export function shape(topic: Topic, ev: FeedEvent, f: SubscriptionFilter): unknown {
  if (f.device_id && ev.device_id !== f.device_id) return null;
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

export interface HubOptions {
  onRenderError(err: unknown, topic: Topic): void;
  /** a group started or ended (its interest changed) */
  onGroupsChange?(): void;
}

export function createHub(feed: Pick<Feed, 'listen'>, opts: HubOptions): Hub {
  const topics = new Map<Topic, Index>(TOPICS.map((t) => [t, { byDevice: new Map(), byProduct: new Map(), any: new Set() }]));
  const groups = new Map<string, Group>();
  const handles = new Set<Handle>();
  const stats = { delivered: 0, dropped: 0, failed: 0 };
  let unlisten: (() => void) | undefined;

  const send = (g: Group, json: string | null) => {
    if (json === null) return;
    const now = Date.now();
    for (const m of g.members) if (m.outlet.deliver(m.prefix, json, now)) stats.delivered++;
  };

  const visit = (topic: Topic, ev: FeedEvent, set: Set<Group> | undefined) => {
    if (!set) return;
    for (const g of set) {
      const payload = shape(topic, ev, g.filter);
      if (payload === null) continue;
      let out: ReturnType<Render>;
      try {
        out = g.render(payload);
      } catch (err) {
        stats.failed++;
        opts.onRenderError(err, topic);
        continue;
      }
      if (typeof out === 'string' || out === null) send(g, out);
      else
        out.then(
          (json) => send(g, json),
          (err: unknown) => {
            stats.failed++;
            opts.onRenderError(err, topic);
          },
        );
    }
  };

  const onEvent = (ev: FeedEvent) => {
    if (ev.type === 'stream') return;
    const topic = ev.type as Topic;
    const idx = topics.get(topic);
    if (!idx) return;
    if (ev.device_id !== undefined) visit(topic, ev, idx.byDevice.get(ev.device_id));
    if (ev.product_key !== undefined) visit(topic, ev, idx.byProduct.get(ev.product_key));
    visit(topic, ev, idx.any);
  };

  /** the index set a group lives in: its device, else its product, else every event of its topic */
  const home = (g: Group, create: boolean): Set<Group> | undefined => {
    const idx = topics.get(g.topic)!;
    const byKey = (map: Map<string, Set<Group>>, k: string) => {
      let s = map.get(k);
      if (!s && create) map.set(k, (s = new Set()));
      return s;
    };
    if (g.filter.device_id) return byKey(idx.byDevice, g.filter.device_id);
    if (g.filter.product_key) return byKey(idx.byProduct, g.filter.product_key);
    return idx.any;
  };

  const drop = (g: Group) => {
    groups.delete(g.key);
    const set = home(g, false);
    set?.delete(g);
    if (set?.size === 0 && set !== topics.get(g.topic)!.any) {
      const idx = topics.get(g.topic)!;
      if (g.filter.device_id) idx.byDevice.delete(g.filter.device_id);
      else if (g.filter.product_key) idx.byProduct.delete(g.filter.product_key);
    }
    opts.onGroupsChange?.();
  };

  return {
    subscribe(req) {
      const key = `${req.topic}\n${req.key}`;
      let g = groups.get(key);
      if (!g) {
        g = { key, topic: req.topic, filter: req.filter, render: req.render(), members: new Set() };
        groups.set(key, g);
        home(g, true)!.add(g);
        opts.onGroupsChange?.();
      }
      const group = g;
      group.members.add(req.member);
      const handle: Handle = new Handle(() => {
        handles.delete(handle);
        group.members.delete(req.member);
        if (group.members.size === 0) drop(group);
        if (handles.size === 0) {
          unlisten?.();
          unlisten = undefined;
        }
      });
      handles.add(handle);
      // Listening only while someone subscribes: with no listener the pipeline skips building feed events.
      unlisten ??= feed.listen(onEvent);
      return handle;
    },
    stats: () => ({ subscriptions: handles.size, groups: groups.size, ...stats }),
    interest() {
      const devices = new Set<string>(), products = new Set<string>();
      let any = false;
      for (const idx of topics.values()) {
        for (const d of idx.byDevice.keys()) devices.add(d);
        for (const k of idx.byProduct.keys()) products.add(k);
        any ||= idx.any.size > 0;
      }
      return { any, devices: [...devices], products: [...products] };
    },
    countDrop: () => void stats.dropped++,
    close() {
      for (const h of [...handles]) void h.return();
    },
  };
}
