/**
 * A small Modbus slave on `net` for tests and benchmarks: Modbus TCP (MBAP) or RTU-over-TCP (raw
 * RTU frames with CRC, answered strictly one at a time as a serial bus would), several units behind
 * one port, units that stop answering, and exception answers for chosen addresses.
 */
import net from 'node:net';
import { crc16 } from '../../runtime/modbus/index.ts';

export interface SlaveUnit {
  coils: Uint8Array;
  discrete: Uint8Array;
  holding: Uint16Array;
  input: Uint16Array;
}

export interface TestSlave {
  port: number;
  mode: 'tcp' | 'rtu-over-tcp';
  unit(id: number): SlaveUnit;
  /** units that receive requests but never answer */
  muted: Set<number>;
  /** holding/input addresses answered with exception 2 (Illegal Data Address) */
  illegal: Set<number>;
  /** requests received per unit */
  counts: Map<number, number>;
  /** ms to wait before answering (every request) */
  delayMs: number;
  /** the order requests arrived in: [unit, function, address] */
  log: [number, number, number][];
  /** connections accepted so far */
  connections: number;
  /** RTU only: requests that arrived while an answer was still due (a master must send one at a time) */
  overlaps: number;
  close(): Promise<void>;
  /** closes every connection and the listener (a slave restart: call listen() again) */
  stop(): Promise<void>;
  listen(port?: number): Promise<number>;
}

function newUnit(): SlaveUnit {
  return { coils: new Uint8Array(65536), discrete: new Uint8Array(65536), holding: new Uint16Array(65536), input: new Uint16Array(65536) };
}

function answer(slave: TestSlave, unitId: number, pdu: Buffer): Buffer | null {
  slave.counts.set(unitId, (slave.counts.get(unitId) ?? 0) + 1);
  const fn = pdu[0]!;
  const addr = pdu.readUInt16BE(1);
  slave.log.push([unitId, fn, addr]);
  if (slave.log.length > 10_000) slave.log.splice(0, 5000);
  if (slave.muted.has(unitId)) return null;
  const u = slave.unit(unitId);
  const exception = (code: number) => Buffer.from([fn | 0x80, code]);
  if (fn === 1 || fn === 2) {
    const qty = pdu.readUInt16BE(3);
    if (addr + qty > 65536) return exception(2);
    const src = fn === 1 ? u.coils : u.discrete;
    const out = Buffer.alloc(2 + Math.ceil(qty / 8));
    out[0] = fn;
    out[1] = Math.ceil(qty / 8);
    for (let i = 0; i < qty; i++) if (src[addr + i]) out[2 + (i >> 3)]! |= 1 << (i & 7);
    return out;
  }
  if (fn === 3 || fn === 4) {
    const qty = pdu.readUInt16BE(3);
    for (let i = 0; i < qty; i++) if (slave.illegal.has(addr + i)) return exception(2);
    if (qty < 1 || qty > 125 || addr + qty > 65536) return exception(3);
    const src = fn === 3 ? u.holding : u.input;
    const out = Buffer.alloc(2 + qty * 2);
    out[0] = fn;
    out[1] = qty * 2;
    for (let i = 0; i < qty; i++) out.writeUInt16BE(src[addr + i]!, 2 + i * 2);
    return out;
  }
  if (fn === 5) {
    u.coils[addr] = pdu.readUInt16BE(3) === 0xff00 ? 1 : 0;
    return Buffer.from(pdu.subarray(0, 5));
  }
  if (fn === 6) {
    if (slave.illegal.has(addr)) return exception(2);
    u.holding[addr] = pdu.readUInt16BE(3);
    return Buffer.from(pdu.subarray(0, 5));
  }
  if (fn === 15 || fn === 16) {
    const qty = pdu.readUInt16BE(3);
    for (let i = 0; i < qty; i++) if (slave.illegal.has(addr + i)) return exception(2);
    for (let i = 0; i < qty; i++) {
      if (fn === 15) u.coils[addr + i] = (pdu[6 + (i >> 3)]! >> (i & 7)) & 1;
      else u.holding[addr + i] = pdu.readUInt16BE(6 + i * 2);
    }
    return Buffer.from(pdu.subarray(0, 5));
  }
  return exception(1);
}

/** RTU request length from its function code (requests only: what this slave receives). */
function rtuRequestLength(buf: Buffer): number {
  if (buf.length < 2) return 0;
  const fn = buf[1]!;
  if (fn >= 1 && fn <= 6) return 8;
  if (fn === 15 || fn === 16) return buf.length < 7 ? 0 : 9 + buf[6]!;
  return 8;
}

export async function startSlave(mode: 'tcp' | 'rtu-over-tcp' = 'tcp', port = 0): Promise<TestSlave> {
  const units = new Map<number, SlaveUnit>();
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  const slave: TestSlave = {
    port: 0,
    mode,
    muted: new Set(),
    illegal: new Set(),
    counts: new Map(),
    delayMs: 0,
    log: [],
    connections: 0,
    overlaps: 0,
    unit(id) {
      let u = units.get(id);
      if (!u) units.set(id, (u = newUnit()));
      return u;
    },
    async listen(p = slave.port) {
      server = net.createServer((s) => serve(s));
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject);
        server!.listen(p, '127.0.0.1', () => resolve());
      });
      slave.port = (server.address() as net.AddressInfo).port;
      return slave.port;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      sockets.clear();
      if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
      server = undefined;
    },
    close: () => slave.stop(),
  };

  const due = new WeakMap<net.Socket, number>();
  const reply = (s: net.Socket, frame: Buffer) => {
    if (!slave.delayMs) return void s.write(frame);
    due.set(s, (due.get(s) ?? 0) + 1);
    setTimeout(() => {
      due.set(s, due.get(s)! - 1);
      if (s.writable) s.write(frame);
    }, slave.delayMs);
  };

  function serve(s: net.Socket): void {
    sockets.add(s);
    slave.connections++;
    s.setNoDelay(true);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (mode === 'tcp') {
        while (buf.length >= 7 && buf.length >= 6 + buf.readUInt16BE(4)) {
          const len = buf.readUInt16BE(4);
          const tid = buf.readUInt16BE(0);
          const unit = buf[6]!;
          const res = answer(slave, unit, buf.subarray(7, 6 + len));
          buf = buf.subarray(6 + len);
          if (!res) continue;
          const out = Buffer.alloc(7 + res.length);
          out.writeUInt16BE(tid, 0);
          out.writeUInt16BE(res.length + 1, 4);
          out[6] = unit;
          res.copy(out, 7);
          reply(s, out);
        }
      } else {
        for (let n = rtuRequestLength(buf); n > 0 && buf.length >= n; n = rtuRequestLength(buf)) {
          const frame = buf.subarray(0, n);
          buf = buf.subarray(n);
          if ((due.get(s) ?? 0) > 0) slave.overlaps++;
          if (crc16(frame, 0, n - 2) !== frame.readUInt16LE(n - 2)) continue; // a serial slave ignores a bad frame
          const res = answer(slave, frame[0]!, frame.subarray(1, n - 2));
          if (!res) continue;
          const out = Buffer.alloc(res.length + 3);
          out[0] = frame[0]!;
          res.copy(out, 1);
          out.writeUInt16LE(crc16(out, 0, res.length + 1), res.length + 1);
          reply(s, out);
        }
      }
    });
  }

  await slave.listen(port);
  return slave;
}
