/**
 * `flux decode` (docs/architecture.md "The uplink path"): the uplink bytes (`msg.raw`, else `msg.payload`) through the
 * product's protocol plugin, or the plugin chosen in the node. Output: `msg.payload` = the
 * StandardMessage (one output message per decoded message), `msg.product`, `msg.plugin` =
 * `{ id, version }`; `msg.raw` stays. A product without a plugin sends JSON `{ values }`.
 * A failure goes to the flow's catch node with the frame (`msg.raw`) on the message.
 * An uplink its transport decoded already (`msg.uplink.decoded`: Modbus polling, whose register map
 * decodes) goes on as that StandardMessage without a plugin call; its trace shows the decode skipped.
 *
 * Who a decoded message belongs to is the platform's decision (runtime/ownership): a `device_id`
 * other than the sender's (`msg.device.id`) goes on only for a registered child of a gateway sender,
 * as the child's own message (`msg.device` = the child, `msg.gateway` = `{ id }` of the gateway).
 * Anything else is refused for that message: a trace span with the reason, `flux_uplink_refused_total`,
 * and the error to the flow's catch node with the refused message as `msg.payload`.
 */
import type { NodeAPI, Node, NodeDef, NodeStatus, NodeMessage } from './red.ts';
import { eachUplink, type ItemOutput } from './batch.ts';
import { countedText, fluxOf, statusThrottle } from './red.ts';
import type { PluginHost } from '../runtime/plugins/index.ts';
import { registerPluginAdmin } from './flux-plugin-admin.ts';
import { checkPlugin, type PluginRef } from './plugin-provenance.ts';
import { productOf, productNow, bytesOf } from './plugin-msg.ts';
import { createOwnership, type Verdict } from '../runtime/ownership/index.ts';
import type { StandardMessage } from '../runtime/storage/index.ts';

/** A decoded message refused because its device_id does not belong to the sender. */
export class OwnershipError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'OwnershipError';
    this.code = code;
  }
}

/** The event id of an …/event/{eventId} uplink, else undefined. */
function eventIdOf(msg: NodeMessage): string | undefined {
  const up = msg.uplink as { type?: string; event_id?: string } | undefined;
  return up?.type === 'event' && typeof up.event_id === 'string' ? up.event_id : undefined;
}

interface DecodeDef extends NodeDef, PluginRef {
  /** '' = the product's protocol_plugin_id */
  plugin?: string;
}

export default function register(RED: NodeAPI): void {
  registerPluginAdmin(RED);
  function FluxDecode(this: Node, def: DecodeDef): void {
    RED.nodes.createNode(this, def);
    const flux = fluxOf(RED);
    const node = this;
    const fixed = def.plugin?.trim() || '';
    let ok = 0;
    let failed = 0;
    let refused = 0;
    const ownership = createOwnership({ devices: flux.registry.devices, metrics: flux.metrics, log: flux.log.child({ module: 'ownership' }) });
    node.status({ fill: 'grey', shape: 'ring', text: fixed || 'flux-decode.status.product-plugin' });
    const status = statusThrottle(node);
    // A plugin missing on this instance keeps its red status: counters do not paint over it.
    let missing: string | undefined;
    checkPlugin(RED, node, flux, def, 'flux decode').then(
      (p) => {
        if (p.state === 'missing') missing = p.text;
      },
      (err: Error) => node.error(`flux decode: cannot check plugin '${fixed}': ${err.message}`),
    );
    const decodedStatus = (): NodeStatus => ({ fill: 'green', shape: 'dot', text: failed ? countedText(RED, 'flux-decode.status.decoded-failed', { ok, count: failed }) : countedText(RED, 'flux-decode.status.decoded', { count: ok }) });
    node.on('close', (_removed, done) => {
      status.close();
      done();
    });

    type Result = Awaited<ReturnType<PluginHost['decodeUplink']>>;
    type Product = NonNullable<Awaited<ReturnType<typeof productOf>>>;

    const failed_ = (msg: NodeMessage, out: ItemOutput, t0: number, pluginId: string | null, err: unknown) => {
      failed++;
      const error = (err as Error).message.slice(0, 60);
      status.update(() => ({ fill: 'red', shape: 'ring', text: missing ?? countedText(RED, 'flux-decode.status.failed', { count: failed, error }) }));
      flux.trace?.span(msg._msgid, { stage: 'decode', took_ms: performance.now() - t0, ok: false, detail: { plugin: pluginId }, error: (err as Error).message });
      // the error reaches the flow's catch node together with msg (and msg.raw, the frame)
      out.fail(err as Error, msg);
      out.end();
    };

    // The decode span's detail, shared while plugin, version and message count stay the same: the
    // trace keeps the last 20,000 uplinks' details (runtime/trace/ring.ts).
    let lastDetail: Readonly<{ plugin: string | null; version: number | null; messages: number }> | undefined;
    const decodeDetail = (result: Result) => {
      const d = lastDetail;
      if (d && d.plugin === result.plugin && d.version === result.version && d.messages === result.messages.length) return d;
      return (lastDetail = Object.freeze({ plugin: result.plugin, version: result.version, messages: result.messages.length }));
    };

    const decoded = (msg: NodeMessage, out: ItemOutput, t0: number, product: Product | null, bytes: Uint8Array, result: Result) => {
      const took = performance.now() - t0;
      flux.trace?.span(msg._msgid, { stage: 'decode', took_ms: took, ok: true, detail: decodeDetail(result) });
      // The message is this node's to change (Node-RED clones it for a second wire): one decoded
      // message goes on as the same object, several as copies of it.
      msg.raw ??= bytes;
      // An …/event/{eventId} uplink: each decoded message is that event, its `values` the payload.
      const eventId = eventIdOf(msg);
      if (eventId !== undefined) for (const m of result.messages) m.event_id = eventId;
      msg.plugin = result.plugin ? { id: result.plugin, version: result.version } : null;
      if (product) msg.product = { id: product.id, key: product.key, protocol_plugin_id: product.protocol_plugin_id };
      const sender = (msg.device as { id?: unknown } | undefined)?.id;
      if (typeof sender === 'string' && !allFrom(sender, result.messages)) {
        owned(msg, out, sender, result.messages);
        return;
      }
      if (result.messages.length === 1) {
        msg.payload = result.messages[0];
        out.emit(0, msg);
      } else for (const m of result.messages) out.emit(0, { ...msg, payload: m });
      ok++;
      status.update(decodedStatus);
      out.end();
    };

    /** The common case: every message is the sender's own (a missing device_id is the sender's). */
    const allFrom = (sender: string, messages: StandardMessage[]): boolean => {
      for (const m of messages) {
        if (m.device_id === undefined || m.device_id === null) m.device_id = sender;
        else if (m.device_id !== sender) return false;
      }
      return true;
    };

    /** Some message names another device: each goes on as its owner's, or is refused with the reason. */
    const owned = (msg: NodeMessage, out: ItemOutput, sender: string, messages: StandardMessage[]) => {
      const verdicts = messages.map((m) => (m.device_id === sender ? null : ownership.check(sender, m.device_id)));
      const finish = (settled: (Verdict | null)[]) => {
        let sent = 0;
        const errors: { err: OwnershipError; msg: NodeMessage }[] = [];
        settled.forEach((v, i) => {
          const m = messages[i]!;
          if (v === null) {
            out.emit(0, { ...msg, payload: m });
            sent++;
          } else if (v.ok) {
            out.emit(0, { ...msg, payload: m, device: { id: v.owner.id, product_id: v.owner.product_id, product_key: v.owner.product_key }, gateway: { id: v.viaGateway } });
            sent++;
          } else {
            const err = new OwnershipError(v.code, `refused: ${v.reason}`);
            errors.push({ err, msg: { ...msg, payload: m } });
            flux.trace?.span(msg._msgid, { stage: 'ownership', ok: false, detail: { sender, device_id: m.device_id, reason: v.code }, error: err.message });
          }
        });
        refused += errors.length;
        if (errors.length) node.status({ fill: 'yellow', shape: 'ring', text: countedText(RED, 'flux-decode.status.refused', { count: refused, error: errors[0]!.err.message.slice(0, 60) }) });
        // Each refusal reaches the flow's catch node with its message; when nothing goes on, the
        // last one fails the message itself, so the pipeline counts it as failed.
        const last = sent === 0 ? errors.pop() : undefined;
        for (const e of errors) node.error(e.err, e.msg);
        if (last) {
          failed++;
          msg.payload = last.msg.payload;
          out.fail(last.err, msg);
        } else ok++;
        out.end();
      };
      if (verdicts.every((v) => !(v instanceof Promise))) finish(verdicts as (Verdict | null)[]);
      else
        Promise.all(verdicts).then(finish, (err: Error) => {
          failed++;
          out.fail(err, msg);
          out.end();
        });
    };

    const start = (msg: NodeMessage, out: ItemOutput, t0: number, bytes: Uint8Array, product: Product | null) => {
      let pluginId: string | null = fixed || null;
      let pending: Promise<Result>;
      try {
        const host = flux.plugins;
        const ts = typeof (msg.uplink as { ts?: unknown } | undefined)?.ts === 'number' ? (msg.uplink as { ts: number }).ts : Date.now();
        const deviceId = (msg.device as { id?: string } | undefined)?.id ?? '';
        if (fixed) pending = host.decodeFrame(fixed, bytes, ts, deviceId, msg._msgid);
        else {
          if (!product) throw new Error('flux decode: the message has no msg.device / msg.product to find its plugin (choose a plugin in the node)');
          pluginId = product.protocol_plugin_id;
          pending = host.decodeUplink(product, { payload: bytes, deviceId, ts, id: msg._msgid, eventId: eventIdOf(msg) });
        }
      } catch (err) {
        failed_(msg, out, t0, pluginId, err);
        return;
      }
      pending.then(
        (result) => decoded(msg, out, t0, product, bytes, result),
        (err) => failed_(msg, out, t0, pluginId, err),
      );
    };

    // Per message: the product from the registry's cache and one Promise for the plugin call (an
    // async handler awaiting an async lookup made six Promises per uplink).
    const alreadyDecoded = (msg: NodeMessage, out: ItemOutput, decoded: object) => {
      const up = msg.uplink as { transport?: string };
      flux.trace?.span(msg._msgid, { stage: 'decode', took_ms: 0, ok: true, detail: { plugin: null, skipped: `decoded by the ${up.transport ?? 'transport'}` } });
      msg.payload = decoded;
      msg.plugin = null;
      const product = productNow(flux, msg);
      if (product) msg.product = { id: product.id, key: product.key, protocol_plugin_id: product.protocol_plugin_id };
      ok++;
      out.emit(0, msg);
      out.end();
    };

    const handleItem = (msg: NodeMessage, out: ItemOutput) => {
      const decoded = (msg.uplink as { decoded?: unknown } | undefined)?.decoded;
      if (decoded && typeof decoded === 'object') return alreadyDecoded(msg, out, decoded);
      const t0 = performance.now();
      let bytes: Uint8Array;
      let product: Product | undefined;
      try {
        bytes = bytesOf(msg);
        product = productNow(flux, msg);
      } catch (err) {
        failed_(msg, out, t0, fixed || null, err);
        return;
      }
      if (product) start(msg, out, t0, bytes, product);
      else
        productOf(flux, msg).then(
          (p) => start(msg, out, t0, bytes, p),
          (err) => failed_(msg, out, t0, null, err),
        );
    };

    const generateId = () => RED.util.generateId();
    node.on('input', (msg, send, done) => eachUplink(flux, node, generateId, 1, msg, send, done, handleItem));
  }
  RED.nodes.registerType('flux decode', FluxDecode);
}
