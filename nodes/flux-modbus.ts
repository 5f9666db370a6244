/**
 * `flux modbus`: ad-hoc Modbus reads and writes from a flow, over the same shared connections as the
 * Modbus master (runtime/modbus).
 *
 * Device mode (a device on the node, or `msg.device.id`, and no host): `read` answers the device's
 * whole register map now as `{ property: value }`; `write` takes `msg.payload` =
 * `{ property, value }` or `{ values: {…} }`, exactly like the `write` command.
 * Address mode (a host on the node): one register spec from the node (`msg.payload` fields override
 * it: function, address, type, word_order, byte_order, scale, offset, unit); `read` answers the value,
 * `write` writes `msg.payload` (or `msg.payload.value`). `msg.modbus` carries the raw registers or bits.
 */
import type { NodeAPI, Node, NodeDef, NodeMessage } from './red.ts';
import { countedText, fluxOf, statusThrottle } from './red.ts';
import {
  decodeBlock, encodeValue, normalizeRegister, planReads, readRequest, registerSchema, writeCoilsRequest, writeRegistersRequest,
  type ModbusMode,
} from '../runtime/modbus/index.ts';

interface ModbusDef extends NodeDef {
  op?: 'read' | 'write';
  device?: string;
  host?: string;
  port?: string | number;
  mode?: ModbusMode;
  unit?: string | number;
  fn?: string | number;
  address?: string | number;
  datatype?: string;
  word_order?: string;
  byte_order?: string;
  scale?: string | number;
  offset?: string | number;
  timeout?: string | number;
}

const num = (v: unknown, fallback: number) => (v === '' || v === undefined || v === null || !Number.isFinite(Number(v)) ? fallback : Number(v));

export default function register(RED: NodeAPI): void {
  function FluxModbus(this: Node, def: ModbusDef): void {
    RED.nodes.createNode(this, def);
    const master = fluxOf(RED).modbus;
    const node = this;
    const op = def.op === 'write' ? 'write' : 'read';
    const host = def.host?.trim() || '';
    let count = 0;
    const where = host ? `${host}:${num(def.port, 502)}` : def.device?.trim() || 'msg.device';
    node.status({ fill: 'grey', shape: 'ring', text: countedText(RED, 'flux-modbus.status.idle', { op, where }) });
    const status = statusThrottle(node);

    async function byAddress(msg: NodeMessage): Promise<void> {
      const over = (msg.payload && typeof msg.payload === 'object' && !Buffer.isBuffer(msg.payload) ? msg.payload : {}) as Record<string, unknown>;
      const spec = registerSchema.safeParse({
        property: 'value',
        function: num(over.function ?? def.fn, 3),
        address: num(over.address ?? def.address, 0),
        type: (over.type ?? def.datatype) || undefined,
        word_order: (over.word_order ?? def.word_order) || undefined,
        byte_order: (over.byte_order ?? def.byte_order) || undefined,
        scale: over.scale !== undefined || def.scale ? num(over.scale ?? def.scale, 1) : undefined,
        offset: over.offset !== undefined || def.offset ? num(over.offset ?? def.offset, 0) : undefined,
      });
      if (!spec.success) throw new Error(`flux modbus: ${spec.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      const r = normalizeRegister(spec.data);
      const address = { host, port: num(def.port, 502), mode: def.mode === 'rtu-over-tcp' ? ('rtu-over-tcp' as const) : ('tcp' as const) };
      const unit = num(over.unit ?? def.unit, 1);
      const timeout = num(def.timeout, 1000);
      if (op === 'read') {
        const [block] = planReads([r]);
        const data = await master!.request(address, unit, readRequest(block!.function, block!.address, block!.quantity), timeout);
        const out: Record<string, number | boolean> = {};
        decodeBlock(block!, data, out);
        msg.modbus = { ...address, unit, function: r.function, address: r.address, data: [...data] };
        msg.payload = out.value;
        return;
      }
      if (r.function === 2 || r.function === 4) throw new Error(`flux modbus: function ${r.function} cannot be written`);
      const value = over.value !== undefined ? over.value : msg.payload;
      const words = encodeValue(r, value);
      const pdu = r.function === 1 ? writeCoilsRequest(r.address, words as boolean[]) : writeRegistersRequest(r.address, words as number[]);
      await master!.request(address, unit, pdu, timeout);
      msg.modbus = { ...address, unit, function: pdu[0], address: r.address, words };
      msg.payload = value;
    }

    node.on('input', async (msg, send, done) => {
      try {
        if (!master) throw new Error('flux modbus: the Modbus master is not running in this process');
        if (host) await byAddress(msg);
        else {
          const device = def.device?.trim() || (msg.device as { id?: unknown } | undefined)?.id;
          if (typeof device !== 'string' || !device) throw new Error('flux modbus: no device (set one on the node or send msg.device.id), and no host');
          const result = await master.command(device, op, op === 'write' ? msg.payload : {});
          if (result.status !== 'delivered') throw new Error(`flux modbus: ${device} is offline: ${result.reason ?? 'no connection'}`);
          msg.modbus = result;
          msg.payload = result.values;
        }
        count++;
        status.update(() => ({ fill: 'green', shape: 'dot', text: countedText(RED, op === 'read' ? 'flux-modbus.status.read' : 'flux-modbus.status.written', { count }) }));
        send(msg);
        done();
      } catch (err) {
        const text = (err as Error).message.slice(0, 50);
        status.update(() => ({ fill: 'red', shape: 'ring', text }));
        done(err as Error);
      }
    });
    node.on('close', (_removed, done) => {
      status.close();
      done();
    });
  }
  RED.nodes.registerType('flux modbus', FluxModbus);
}
