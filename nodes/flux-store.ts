/**
 * `flux store`: writes StandardMessages (`msg.payload`, one or an array) of `msg.device` to the
 * time-series store, checked against the product's thing model, in batches by size and by time
 * (ARCHITECTURE §5; the pipeline's p99 publish→stored target is 50 ms, so the window stays short).
 * A message leaves the output once its batch is stored or safely in the on-disk buffer, with
 * `msg.stored = { points, refused }`.
 */
import type { NodeAPI, Node, NodeDef, NodeMessage, Send, Done } from './red.ts';
import { fluxOf } from './red.ts';
import { service } from '../runtime/app/context.ts';
import type { Point, Storage, StandardMessage } from '../runtime/storage/index.ts';

interface StoreDef extends NodeDef {
  /** flush when this many points are waiting (default 1000) */
  batchSize?: number | string;
  /** flush at most this long after the first waiting point (ms, default 15) */
  flushMs?: number | string;
}

interface Waiting {
  msg: NodeMessage;
  send: Send;
  done: Done;
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
    let timer: NodeJS.Timeout | undefined;
    let stored = 0;
    let refused = 0;
    let lastStatus = 0;
    const inflight = new Set<Promise<void>>();

    const status = () => {
      const now = Date.now();
      if (now - lastStatus < 1000) return;
      lastStatus = now;
      const s = flux.services.get('storage') as Storage | undefined;
      const st = s?.stats();
      node.status(
        st && !st.up
          ? { fill: 'yellow', shape: 'ring', text: `db away: ${st.buffered_points} buffered on disk` }
          : { fill: 'green', shape: 'dot', text: `${stored} stored${refused ? `, ${refused} refused` : ''}` },
      );
    };

    const flush = () => {
      clearTimeout(timer);
      timer = undefined;
      if (waiting.length === 0) return;
      const batch = points, msgs = waiting;
      points = [];
      waiting = [];
      const p = service<Storage>(flux, 'storage')
        .write(batch)
        .then(
          () => {
            stored += batch.length;
            for (const w of msgs) {
              w.send(w.msg);
              w.done();
            }
          },
          (err: Error) => {
            for (const w of msgs) w.done(err);
          },
        )
        .finally(() => {
          inflight.delete(p);
          status();
        });
      inflight.add(p);
    };

    node.on('input', (msg, send, done) => {
      const payload = msg.payload as StandardMessage | StandardMessage[] | undefined;
      const dev = (msg.device ?? {}) as { id?: string; product_id?: string };
      const first = Array.isArray(payload) ? payload[0] : payload;
      const id = dev.id ?? first?.device_id;
      if (!payload || typeof payload !== 'object' || !id) {
        done(new Error('flux store: needs msg.payload = { device_id?, values, ts? } (or an array) and msg.device.id or payload.device_id'));
        return;
      }
      let storage: Storage;
      try {
        storage = service<Storage>(flux, 'storage');
      } catch (err) {
        done(err as Error);
        return;
      }
      const uplinkTs = (msg.uplink as { ts?: number } | undefined)?.ts;
      storage.prepare(payload, { id, product_id: dev.product_id }, typeof uplinkTs === 'number' ? uplinkTs : Date.now()).then(
        (r) => {
          refused += r.refused.length;
          msg.stored = { points: r.points, refused: r.refused };
          for (const pt of r.points_list) points.push(pt);
          waiting.push({ msg, send, done });
          if (points.length >= batchSize || flushMs === 0) flush();
          else timer ??= setTimeout(flush, flushMs);
        },
        (err: Error) => done(err),
      );
    });

    node.on('close', (_removed, done) => {
      flush();
      Promise.allSettled([...inflight]).then(() => done());
    });
  }
  RED.nodes.registerType('flux store', FluxStore);
}
