/**
 * `flux device in`: messages from devices on the device bus (docs/architecture.md "The uplink path"), filtered by product,
 * device and type. Output: `msg.payload` = the uplink bytes, `msg.raw` = the same bytes,
 * `msg.device` = `{ id, product_id, product_key }`, `msg.uplink` = the bus message (id, type, ts, topic;
 * `decoded` when the transport decoded it already, as Modbus polling does). One message per uplink
 * to every node but FLUX's own: `flux decode`, `flux rule` and `flux store` take an event-loop turn's
 * uplinks (under load, those of up to FLUX_FLOW_BATCH_MS) as one batch message (runtime/flow-engine batch.ts).
 */
import type { NodeAPI, Node, NodeDef, NodeStatus, NodeMessage } from './red.ts';
import { countedText, fluxOf, statusThrottle } from './red.ts';
import { matchesFilter, type BusFilter } from '../runtime/bus/index.ts';
import { batchMessage } from '../runtime/flow-engine/index.ts';
import { histogram } from '../runtime/metrics/index.ts';

interface DeviceInDef extends NodeDef {
  product?: string;
  device?: string;
  /** '' (uplinks and status), 'uplink' (every uplink, no status), 'properties', 'event', 'raw' or 'status' */
  kind?: string;
  /** true: may run beside another `flux device in` with the same filter (default false: refused, see below) */
  shared?: boolean;
}

/** uplinks in one batch message at most (a turn that read more sends several) */
const MAX_BATCH = 1000;

/**
 * Which node holds each filter, per FLUX runtime. Importing a copy of a flow ("Import copy" of the
 * default flow) made two pipelines that both stored, ruled and alarmed every uplink: a second
 * `flux device in` with the same product, device and type filter refuses to run (red status naming
 * the node that has it) unless both are marked shared. The first one deployed keeps it.
 */
const holders = new WeakMap<object, Map<string, { id: string; shared: boolean }>>();

export default function register(RED: NodeAPI): void {
  function FluxDeviceIn(this: Node, def: DeviceInDef): void {
    RED.nodes.createNode(this, def);
    const flux = fluxOf(RED);
    const node = this;
    const filter: BusFilter = {};
    const product = def.product?.trim();
    if (product) {
      if (/^[0-9a-f-]{36}$/i.test(product)) filter.productId = product;
      else filter.productKey = product;
    }
    if (def.device?.trim()) filter.deviceId = def.device.trim();
    const kind = def.kind?.trim() || '';
    const claims = holders.get(flux) ?? holders.set(flux, new Map()).get(flux)!;
    const filterKey = JSON.stringify([product ?? '', filter.deviceId ?? '', kind]);
    const shared = def.shared === true;
    const holder = claims.get(filterKey);
    if (holder && holder.id !== node.id && !(holder.shared && shared)) {
      node.status({ fill: 'red', shape: 'ring', text: countedText(RED, 'flux-device-in.status.duplicate', { node: holder.id }) });
      node.error(`flux device in: node ${holder.id} already takes these uplinks (the same product, device and type filter); this node does not run, so a copied flow does not process every message twice. Delete one of them, change the filter, or tick "shared" on both and deploy again.`);
      node.on('close', (_removed, done) => done());
      return;
    }
    if (!holder) claims.set(filterKey, { id: node.id, shared });
    let count = 0;
    let closed = false;
    const status = statusThrottle(node);
    const received = (): NodeStatus => ({ fill: 'green', shape: 'dot', text: countedText(RED, 'flux-device-in.status.received', { count }) });
    node.status({ fill: 'grey', shape: 'ring', text: 'flux-device-in.status.waiting' });

    if (kind !== 'status') {
      const pipeline = flux.pipeline;
      const wired = (node as unknown as { wires?: string[][] }).wires?.some((w) => w.length > 0) ?? true;
      // This turn's uplinks, sent as one batch message when the turn ends (runtime/flow-engine batch.ts).
      let waiting: NodeMessage[] = [];
      // A batch at most every FLUX_FLOW_BATCH_MS. An uplink that comes alone still leaves at the end
      // of its event-loop turn; under load the uplinks of several turns share one batch, so what a
      // batch costs downstream is paid once for all of them: Node-RED's routing, and a postMessage to
      // the plugin worker, the script worker and the SQLite writer (docs/architecture.md "Batches through Node-RED").
      const interval = flux.settings.flowBatchMs;
      let lastSent = -Infinity;
      const batchSizes = histogram(flux.metrics, 'flux_flow_batch_uplinks', 'uplinks per batch message a flux device in node sent (one per event-loop turn)', [], [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]);
      const sendBatch = () => {
        const items = waiting;
        waiting = [];
        lastSent = performance.now();
        // closed meanwhile (a deploy): like any message in flight during a deploy, they are dropped
        // and the pipeline's deadline finishes them
        if (closed) return;
        status.update(received);
        for (let i = 0; i < items.length; i += MAX_BATCH) {
          const part = items.length <= MAX_BATCH ? items : items.slice(i, i + MAX_BATCH);
          batchSizes.observe(part.length);
          node.send(batchMessage(part, RED.util.generateId()));
          if (wired) for (const item of part) pipeline.sent(item._msgid!);
        }
      };
      flux.bus.on('uplink', node, (up) => {
        if (kind && kind !== 'uplink' && up.type !== kind) return;
        if (!matchesFilter(filter, up)) return;
        count++;
        // The bus counts the returned thenable as in flight until the uplink has left the flows:
        // that is what lets the broker stop reading device sockets when the flows fall behind.
        const finished = wired ? pipeline.track(up.id, up.ts) : undefined;
        if (waiting.length === 0) {
          const wait = lastSent + interval - performance.now();
          if (wait <= 0) setImmediate(sendBatch);
          else setTimeout(sendBatch, wait);
        }
        waiting.push({
          _msgid: up.id,
          topic: up.topic,
          payload: up.payload,
          raw: up.payload,
          device: { id: up.deviceId, product_id: up.productId, product_key: up.productKey },
          uplink: up.decoded
            ? { id: up.id, type: up.type, event_id: up.eventId, ts: up.ts, transport: up.transport, topic: up.topic, decoded: up.decoded }
            : { id: up.id, type: up.type, event_id: up.eventId, ts: up.ts, transport: up.transport, topic: up.topic },
        });
        return finished;
      });
    }
    if (kind === '' || kind === 'status') {
      flux.bus.on('status', node, (ev) => {
        if (!matchesFilter(filter, ev)) return;
        node.send({
          topic: `status/${ev.status}`,
          payload: { status: ev.status, ts: ev.ts, reason: ev.reason },
          device: { id: ev.deviceId, product_id: ev.productId, product_key: ev.productKey },
          status: ev,
        });
      });
    }
    node.on('close', (_removed, done) => {
      closed = true;
      if (claims.get(filterKey)?.id === node.id) claims.delete(filterKey);
      status.close();
      flux.bus.removeOwner(node);
      done();
    });
  }
  RED.nodes.registerType('flux device in', FluxDeviceIn);
}
