/**
 * `flux store`: writes StandardMessages (`msg.payload`, one or an array) of `msg.device` to the
 * time-series store, checked against the product's thing model, in batches by size and by time
 * (docs/architecture.md "The uplink path"; the pipeline's p99 publish→stored target is 50 ms, so the window stays short).
 * A message leaves the output once its batch is stored or safely in the on-disk buffer, with
 * `msg.stored = { points, refused, events? }`. Messages of a device event (`event_id` set by `flux decode`)
 * are stored as events (device, event id, time, payload, message id), not as points.
 */
import type { NodeAPI, Node, NodeDef, NodeStatus, NodeMessage } from './red.ts';
import { eachUplink, type ItemOutput } from './batch.ts';
import { countedText, fluxOf, statusThrottle } from './red.ts';
import type { DeviceEvent, Point, Storage, StandardMessage } from '../runtime/storage/index.ts';
import type { Feed } from '../runtime/feed/index.ts';

/** Live feed `telemetry` events for a stored message (one per StandardMessage it carries), `event` for its device events. */
function publishTelemetry(feed: Feed, msg: NodeMessage, events: DeviceEvent[]): void {
  const dev = (msg.device ?? {}) as { id?: string; product_key?: string };
  for (const e of events) feed.publish({ type: 'event', device_id: e.device, product_key: dev.product_key, ts: e.ts, event_id: e.event, payload: e.payload, flagged: e.flagged, problem: e.problem, msg_id: e.msg_id });
  const list = Array.isArray(msg.payload) ? (msg.payload as StandardMessage[]) : [msg.payload as StandardMessage];
  for (const m of list) {
    if (!m || typeof m !== 'object' || m.event_id !== undefined) continue;
    feed.publish({ type: 'telemetry', device_id: m.device_id ?? dev.id, product_key: dev.product_key, ts: typeof m.ts === 'number' ? m.ts : ((msg.uplink as { ts?: number } | undefined)?.ts ?? Date.now()), values: m.values, msg_id: msg._msgid });
  }
}

interface StoreDef extends NodeDef {
  /** flush when this many points are waiting (default 1000) */
  batchSize?: number | string;
  /** flush at most this long after the first waiting point (ms, default 15; 0: at the end of the event-loop turn) */
  flushMs?: number | string;
}

type PrepareResult = Awaited<ReturnType<Storage['prepare']>>;

interface Waiting {
  /** when the message reached this node (ms), for its trace span */
  at: number;
  msg: NodeMessage;
  /** the message's device events, stored with the batch */
  events: DeviceEvent[];
  out: ItemOutput;
}

export default function register(RED: NodeAPI): void {
  function FluxStore(this: Node, def: StoreDef): void {
    RED.nodes.createNode(this, def);
    const flux = fluxOf(RED);
    const node = this;
    const batchSize = Math.max(1, Math.min(Number(def.batchSize) || 1000, 50_000));
    const flushMs = Math.max(0, Math.min(Number(def.flushMs ?? 15) || 0, 1000));
    let points: Point[] = [];
    let waiting: Waiting[] = [];
    let timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
    // 0: the points of one event-loop turn (a batch from `flux device in`, docs/architecture.md
    // "Batches through Node-RED") go in one write, not one write per uplink. The default window of
    // 15 ms costs p50 latency (15 -> 6 ms at 15k msg/s with 0) but ~5 % less CPU per uplink
    // (docs/benchmarks.md "Session 13").
    const later = (): NodeJS.Timeout | NodeJS.Immediate => (flushMs === 0 ? setImmediate(flush) : setTimeout(flush, flushMs));
    const cancel = (t: NodeJS.Timeout | NodeJS.Immediate | undefined) => {
      if (t === undefined) return;
      if (flushMs === 0) clearImmediate(t as NodeJS.Immediate);
      else clearTimeout(t as NodeJS.Timeout);
    };
    let stored = 0;
    let refused = 0;
    const inflight = new Set<Promise<void>>();

    const throttle = statusThrottle(node);
    const shown = (): NodeStatus => {
      const st = flux.storage.stats();
      return st && !st.up
        ? { fill: 'yellow', shape: 'ring', text: countedText(RED, 'flux-store.status.away', { count: st.buffered_points }) }
        : { fill: 'green', shape: 'dot', text: refused ? countedText(RED, 'flux-store.status.stored-refused', { stored, count: refused }) : countedText(RED, 'flux-store.status.stored', { count: stored }) };
    };
    const status = () => throttle.update(shown);

    const flush = () => {
      cancel(timer);
      timer = undefined;
      if (waiting.length === 0) return;
      const batch = points, msgs = waiting;
      points = [];
      waiting = [];
      const storage = flux.storage;
      const events = msgs.some((w) => w.events.length) ? msgs.flatMap((w) => w.events) : [];
      // Points and events go through the writer together: to the store, or to its on-disk buffer while the store is away.
      const p = storage.write(batch, events)
        .then(
          () => {
            stored += batch.length;
            const now = Date.now();
            const feed = flux.feed;
            const live = feed.clients() > 0;
            // one detail per point count in this batch, shared by its uplinks' spans (runtime/trace/ring.ts keeps them)
            const details = new Map<number | undefined, Readonly<{ batch: number; points: number | undefined }>>();
            for (const w of msgs) {
              const points = (w.msg.stored as { points?: number } | undefined)?.points;
              let detail = details.get(points);
              if (!detail) details.set(points, (detail = Object.freeze({ batch: batch.length, points })));
              flux.trace.span(w.msg._msgid, { stage: 'store', ok: true, took_ms: now - w.at, detail });
              w.out.emit(0, w.msg);
              w.out.end();
            }
            // The live views (feed clients, GraphQL subscriptions) after the whole batch left the node:
            // their fan-out never holds back the batch's later messages.
            if (live) for (const w of msgs) publishTelemetry(feed, w.msg, w.events);
          },
          (err: Error) => {
            const now = Date.now();
            for (const w of msgs) {
              flux.trace.span(w.msg._msgid, { stage: 'store', ok: false, took_ms: now - w.at, error: err.message });
              w.out.fail(err, w.msg);
              w.out.end();
            }
          },
        )
        .finally(() => {
          inflight.delete(p);
          status();
        });
      inflight.add(p);
    };

    const handleItem = (msg: NodeMessage, out: ItemOutput) => {
      const payload = msg.payload as StandardMessage | StandardMessage[] | undefined;
      const dev = (msg.device ?? {}) as { id?: string; product_id?: string };
      const first = Array.isArray(payload) ? payload[0] : payload;
      const id = dev.id ?? first?.device_id;
      if (!payload || typeof payload !== 'object' || !id) {
        out.fail(new Error('flux store: needs msg.payload = { device_id?, values, ts? } (or an array) and msg.device.id or payload.device_id'), msg);
        out.end();
        return;
      }
      const storage = flux.storage;
      const at = Date.now();
      const uplinkTs = (msg.uplink as { ts?: number } | undefined)?.ts;
      const device = { id, product_id: dev.product_id };
      const fallbackTs = typeof uplinkTs === 'number' ? uplinkTs : at;
      const accept = (r: PrepareResult) => {
        refused += r.refused.length;
        msg.stored = r.events ? { points: r.points, refused: r.refused, events: r.events } : { points: r.points, refused: r.refused };
        for (const pt of r.points_list) points.push(pt);
        waiting.push({ at, msg, out, events: r.events_list });
        if (points.length + r.events_list.length >= batchSize) flush();
        else timer ??= later();
      };
      // The product's policy is usually cached: then no Promise (and no closure kept) per message.
      let now: PrepareResult | undefined;
      try {
        now = storage.prepareNow?.(payload, device, fallbackTs, msg._msgid);
      } catch (err) {
        out.fail(err as Error, msg);
        out.end();
        return;
      }
      if (now) accept(now);
      else
        storage.prepare(payload, device, fallbackTs, msg._msgid).then(accept, (err: Error) => {
          out.fail(err, msg);
          out.end();
        });
    };
    const generateId = () => RED.util.generateId();
    node.on('input', (msg, send, done) => eachUplink(flux, node, generateId, 1, msg, send, done, handleItem));

    node.on('close', (_removed, done) => {
      throttle.close();
      flush();
      Promise.allSettled([...inflight]).then(() => done());
    });
  }
  RED.nodes.registerType('flux store', FluxStore);
}
