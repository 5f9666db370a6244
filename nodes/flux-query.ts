/**
 * `flux query`: reads stored telemetry into a flow. Settings come from the node, overridden by
 * `msg.payload` fields (device, metric, from, to, interval, agg, limit); times are ISO, epoch ms or
 * relative to now (`-1h`). Output: `msg.payload` = the items the REST API answers, `msg.query` = the query.
 */
import type { NodeAPI, Node, NodeDef } from './red.ts';
import { countedText, fluxOf } from './red.ts';
import { parseTelemetryQuery } from '../runtime/storage/index.ts';

interface QueryDef extends NodeDef {
  /** 'range' (default: raw or aggregated history) or 'latest' (the newest value of each metric) */
  mode?: string;
  device?: string;
  metric?: string;
  from?: string;
  to?: string;
  interval?: string;
  agg?: string;
  limit?: string;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `-15m` → now − 15 minutes; anything else is passed through. */
function relative(v: unknown, now: number): unknown {
  const m = typeof v === 'string' ? /^-(\d+)(ms|s|m|h|d)$/.exec(v.trim()) : null;
  return m ? String(now - Number(m[1]) * UNITS[m[2]!]!) : v;
}

export default function register(RED: NodeAPI): void {
  function FluxQuery(this: Node, def: QueryDef): void {
    RED.nodes.createNode(this, def);
    const flux = fluxOf(RED);
    const node = this;
    node.on('input', async (msg, send, done) => {
      try {
        const p = (msg.payload && typeof msg.payload === 'object' && !Array.isArray(msg.payload) ? msg.payload : {}) as Record<string, unknown>;
        const pick = (k: keyof QueryDef) => (p[k] !== undefined && p[k] !== '' ? p[k] : def[k] || undefined);
        const device = (pick('device') ?? (msg.device as { id?: string } | undefined)?.id) as string | undefined;
        if (!device) throw new Error('flux query: no device (node setting, msg.payload.device or msg.device.id)');
        const storage = flux.storage;
        if ((pick('mode') ?? 'range') === 'latest') {
          const items = await storage.store.latest(device);
          msg.payload = { device_id: device, items, values: Object.fromEntries(items.map((s) => [s.metric, s.value])) };
          msg.query = { device, mode: 'latest' };
          node.status({ fill: 'green', shape: 'dot', text: countedText(RED, 'flux-query.status.metrics', { count: items.length }) });
          send(msg);
          done();
          return;
        }
        const now = Date.now();
        const q = parseTelemetryQuery({ metric: pick('metric'), from: relative(pick('from'), now), to: relative(pick('to'), now), interval: pick('interval'), agg: pick('agg'), limit: pick('limit') }, now);
        msg.payload =
          q.interval !== undefined
            ? await storage.store.aggregate({ device, metrics: q.metrics, from: q.from, to: q.to, interval: q.interval, aggs: q.aggs, limit: q.limit })
            : await storage.store.range({ device, metrics: q.metrics, from: q.from, to: q.to, limit: q.limit });
        msg.query = { device, ...q };
        node.status({ fill: 'green', shape: 'dot', text: countedText(RED, 'flux-query.status.items', { count: (msg.payload as unknown[]).length }) });
        send(msg);
        done();
      } catch (err) {
        node.status({ fill: 'red', shape: 'ring', text: (err as Error).message.slice(0, 40) });
        done(err as Error);
      }
    });
  }
  RED.nodes.registerType('flux query', FluxQuery);
}
