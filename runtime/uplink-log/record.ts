/**
 * The on-disk form of one uplink in the durable log: a length, a CRC-32 of what follows, then the
 * fields and the raw bytes. A record whose length or CRC does not check at the end of the open
 * segment is a torn write from a crash, and is cut; one with whole records after it is a damaged
 * block, and is skipped (segments.ts `recordsOf`; docs/storage.md "Uplink log").
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
/** the bytes of a record's body before its strings */
export const RECORD_FIXED = 8 + 8 + 1 + 1 + 6 * 2;
/** a record larger than this is corrupt (the largest uplink is bounded far below it) */
export const MAX_RECORD = 16 * 1024 * 1024;

const TRANSPORT_CODE: Record<LogTransport, number> = { mqtt: 0, tcp: 1, http: 2, modbus: 3 };
const TYPE_CODE: Record<LogType, number> = { properties: 0, event: 1, raw: 2 };

/**
 * Encodes an entry into `buf` at `at` and answers the offset after it, or, when `buf` has too little
 * room, minus the bytes the record needs (nothing is written then). `seq` is given apart, so the
 * caller's object is not reshaped. Writing in place lets a group commit fill one buffer with no
 * per-record allocation or copy (bench/uplink-log.bench.ts measures the append cost).
 */
export function encodeRecordAt(r: Omit<LogRecord, 'seq'>, seq: number, buf: Buffer, at: number): number {
  const { id, deviceId, productId, productKey, topic } = r;
  const eventId = r.eventId ?? '';
  // All-ASCII strings (the usual case) are written as one: two native calls per record instead of
  // twelve (a third of the encoding's time at 15k uplinks a second, docs/benchmarks.md "Session 14").
  // Otherwise each string is measured and written on its own: joined, a lone surrogate ending one
  // and starting the next would pair up and change the byte count.
  const strings = id + deviceId + productId + productKey + topic + eventId;
  const ascii = Buffer.byteLength(strings, 'utf8') === strings.length;
  const l0 = ascii ? id.length : Buffer.byteLength(id);
  const l1 = ascii ? deviceId.length : Buffer.byteLength(deviceId);
  const l2 = ascii ? productId.length : Buffer.byteLength(productId);
  const l3 = ascii ? productKey.length : Buffer.byteLength(productKey);
  const l4 = ascii ? topic.length : Buffer.byteLength(topic);
  const l5 = ascii ? eventId.length : Buffer.byteLength(eventId);
  if ((l0 | l1 | l2 | l3 | l4 | l5) > 0xffff) throw new RangeError('uplink log: a field is longer than 65535 bytes');
  const body = RECORD_FIXED + l0 + l1 + l2 + l3 + l4 + l5 + r.payload.length;
  if (buf.length - at < PREFIX + body) return -(PREFIX + body);
  let o = at + PREFIX;
  buf.writeDoubleLE(seq, o);
  buf.writeDoubleLE(r.ts, o + 8);
  buf[o + 16] = TRANSPORT_CODE[r.transport];
  buf[o + 17] = TYPE_CODE[r.type];
  buf.writeUInt16LE(l0, o + 18);
  buf.writeUInt16LE(l1, o + 20);
  buf.writeUInt16LE(l2, o + 22);
  buf.writeUInt16LE(l3, o + 24);
  buf.writeUInt16LE(l4, o + 26);
  buf.writeUInt16LE(l5, o + 28);
  o += 30;
  if (ascii) o += buf.write(strings, o, strings.length, 'latin1');
  else {
    o += buf.write(id, o, l0, 'utf8');
    o += buf.write(deviceId, o, l1, 'utf8');
    o += buf.write(productId, o, l2, 'utf8');
    o += buf.write(productKey, o, l3, 'utf8');
    o += buf.write(topic, o, l4, 'utf8');
    if (l5) o += buf.write(eventId, o, l5, 'utf8');
  }
  o += r.payload.copy(buf, o);
  buf.writeUInt32LE(body, at);
  buf.writeUInt32LE(crc32(buf.subarray(at + PREFIX, o)), at + 4);
  return o;
}

/** Encodes an entry into a buffer of its own. */
export function encodeRecord(r: Omit<LogRecord, 'seq'>, seq: number): Buffer {
  const need = -encodeRecordAt(r, seq, Buffer.alloc(0), 0);
  const buf = Buffer.allocUnsafe(need);
  encodeRecordAt(r, seq, buf, 0);
  return buf;
}

/**
 * Decodes the record at `at` in `buf`. Answers `undefined` when the bytes there are incomplete
 * (need more) and `null` when they are corrupt (a torn tail).
 */
export function decodeRecord(buf: Buffer, at: number): { record: LogRecord; next: number } | undefined | null {
  if (buf.length - at < PREFIX) return undefined;
  const body = buf.readUInt32LE(at);
  if (body < RECORD_FIXED || body > MAX_RECORD) return null;
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
