/**
 * `flux device in`: messages from devices on the device bus (docs/architecture.md "The uplink path"), filtered by product,
 * device and type. Output: `msg.payload` = the uplink bytes, `msg.raw` = the same bytes,
 * `msg.device` = `{ id, product_id, product_key }`, `msg.uplink` = the bus message (id, type, ts, topic;
 * `decoded` when the transport decoded it already, as Modbus polling does).
 */
import type { NodeAPI, Node, NodeDef, NodeStatus } from './red.ts';
import { countedText, fluxOf, statusThrottle } from './red.ts';
import { matchesFilter, type BusFilter } from '../runtime/bus/index.ts';

interface DeviceInDef extends NodeDef {
  product?: string;
  device?: string;
  /** '' (uplinks and status), 'uplink' (every uplink, no status), 'properties', 'event', 'raw' or 'status' */
  kind?: string;
  /** true: may run beside another `flux device in` with the same filter (default false: refused, see below) */
  shared?: boolean;
}

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
    const status = statusThrottle(node);
    const received = (): NodeStatus => ({ fill: 'green', shape: 'dot', text: countedText(RED, 'flux-device-in.status.received', { count }) });
    node.status({ fill: 'grey', shape: 'ring', text: 'flux-device-in.status.waiting' });

    if (kind !== 'status') {
      const pipeline = flux.pipeline;
      const wired = (node as unknown as { wires?: string[][] }).wires?.some((w) => w.length > 0) ?? true;
      flux.bus.on('uplink', node, (up) => {
        if (kind && kind !== 'uplink' && up.type !== kind) return;
        if (!matchesFilter(filter, up)) return;
        count++;
        status.update(received);
        // The bus counts the returned promise as in flight until the message has left the flows:
        // that is what lets the broker stop reading device sockets when the flows fall behind.
        const finished = wired ? pipeline.track(up.id, up.ts) : undefined;
        node.send({
          _msgid: up.id,
          topic: up.topic,
          payload: up.payload,
          raw: up.payload,
          device: { id: up.deviceId, product_id: up.productId, product_key: up.productKey },
          uplink: up.decoded
            ? { id: up.id, type: up.type, event_id: up.eventId, ts: up.ts, transport: up.transport, topic: up.topic, decoded: up.decoded }
            : { id: up.id, type: up.type, event_id: up.eventId, ts: up.ts, transport: up.transport, topic: up.topic },
        });
        if (finished) pipeline.sent(up.id);
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
      if (claims.get(filterKey)?.id === node.id) claims.delete(filterKey);
      status.close();
      flux.bus.removeOwner(node);
      done();
    });
  }
  RED.nodes.registerType('flux device in', FluxDeviceIn);
}
