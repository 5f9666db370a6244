/**
 * The on-disk form of one uplink in the durable log: a length, a CRC-32 of what follows, then the
 * fields and the raw bytes. A record whose length or CRC does not check is a torn write from a
 * crash: recovery stops the segment there (docs/storage.md "Uplink log").
 *
 *   u32 len | u32 crc32 | f64 seq | f64 ts | u8 transport | u8 type | u16 × 6 string lengths |
 *   id | device_id | product_id | product_key | topic | event_id | payload
 */
import { crc32 } from 'node:zlib';

export const TRANSPORTS = ['mqtt', 'tcp', 'http', 'modbus'] as const;
export const TYPES = ['properties', 'event', 'raw'] as const;
export type LogTransport = (typeof TRANSPORTS)[number];
export type LogType = (typeof TYPES)[number];

/** An uplink as the log keeps it; `seq` is its position, dense and increasing from 1. */
export interface LogRecord {
  seq: number;
  id: string;
  deviceId: string;
  productId: string;
  productKey: string;
  transport: LogTransport;
  type: LogType;
  eventId?: string;
  topic: string;
  /** receive time, ms since epoch */
  ts: number;
  payload: Buffer;
}

export const PREFIX = 8;
const FIXED = 8 + 8 + 1 + 1 + 6 * 2;
/** a record larger than this is corrupt (the largest uplink is bounded far below it) */
export const MAX_RECORD = 16 * 1024 * 1024;

/** Encodes an entry; `seq` is given apart, so the caller's object is not reshaped. */
export function encodeRecord(r: Omit<LogRecord, 'seq'>, seq: number): Buffer {
  const strs = [r.id, r.deviceId, r.productId, r.productKey, r.topic, r.eventId ?? ''];
  const lens = strs.map((s) => Buffer.byteLength(s));
  for (const l of lens) if (l > 0xffff) throw new RangeError('uplink log: a field is longer than 65535 bytes');
  const body = FIXED + lens.reduce((a, b) => a + b, 0) + r.payload.length;
  const buf = Buffer.allocUnsafe(PREFIX + body);
  let o = PREFIX;
  buf.writeDoubleLE(seq, o);
  buf.writeDoubleLE(r.ts, o + 8);
  buf[o + 16] = TRANSPORTS.indexOf(r.transport);
  buf[o + 17] = TYPES.indexOf(r.type);
  o += 18;
  for (const l of lens) {
    buf.writeUInt16LE(l, o);
    o += 2;
  }
  for (let i = 0; i < strs.length; i++) o += buf.write(strs[i]!, o, lens[i], 'utf8');
  r.payload.copy(buf, o);
  buf.writeUInt32LE(body, 0);
  buf.writeUInt32LE(crc32(buf.subarray(PREFIX)), 4);
  return buf;
}

/**
 * Decodes the record at `at` in `buf`. Answers `undefined` when the bytes there are incomplete
 * (need more) and `null` when they are corrupt (a torn tail).
 */
export function decodeRecord(buf: Buffer, at: number): { record: LogRecord; next: number } | undefined | null {
  if (buf.length - at < PREFIX) return undefined;
  const body = buf.readUInt32LE(at);
  if (body < FIXED || body > MAX_RECORD) return null;
  if (buf.length - at - PREFIX < body) return undefined;
  const start = at + PREFIX;
  const end = start + body;
  if (crc32(buf.subarray(start, end)) !== buf.readUInt32LE(at + 4)) return null;
  const transport = TRANSPORTS[buf[start + 16]!];
  const type = TYPES[buf[start + 17]!];
  if (!transport || !type) return null;
  let o = start + 18;
  const lens: number[] = [];
  for (let i = 0; i < 6; i++, o += 2) lens.push(buf.readUInt16LE(o));
  const strs: string[] = [];
  for (const l of lens) {
    if (o + l > end) return null;
    strs.push(buf.toString('utf8', o, o + l));
    o += l;
  }
  const record: LogRecord = {
    seq: buf.readDoubleLE(start),
    ts: buf.readDoubleLE(start + 8),
    transport,
    type,
    id: strs[0]!,
    deviceId: strs[1]!,
    productId: strs[2]!,
    productKey: strs[3]!,
    topic: strs[4]!,
    payload: Buffer.from(buf.subarray(o, end)),
  };
  if (strs[5]) record.eventId = strs[5];
  return { record, next: end };
}
