/**
 * How uplinks sit in the shared log: one JetStream message per group commit of one partition,
 * holding its records back to back in the single-node log's record format (runtime/uplink-log's
 * record.ts: length, CRC-32, fields, payload). A record's seq in cluster mode is its message's
 * stream sequence × SEQ_STRIDE + its index in the message: unique, increasing, a cursor for the raw
 * traffic API.
 */
import { decodeRecord, encodeRecord, type AppendInput, type LogRecord } from '../uplink-log/index.ts';

/** records per message at most; a record's seq is `streamSeq * SEQ_STRIDE + index` */
export const SEQ_STRIDE = 1000;

export function encodeEntry(input: AppendInput): Buffer {
  return encodeRecord(input, 0);
}

/** The records of the message at stream sequence `streamSeq`; a corrupt tail is dropped (it never passed its CRC). */
export function decodeBatch(data: Uint8Array, streamSeq: number): LogRecord[] {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out: LogRecord[] = [];
  for (let at = 0; at < buf.length && out.length < SEQ_STRIDE; ) {
    const d = decodeRecord(buf, at);
    if (!d) break;
    d.record.seq = streamSeq * SEQ_STRIDE + out.length;
    out.push(d.record);
    at = d.next;
  }
  return out;
}

/** The stream sequence a record seq (a raw-traffic cursor) points into. */
export const streamSeqOf = (seq: number): number => Math.floor(seq / SEQ_STRIDE);

/** FNV-1a of the device id, mod `partitions`: every node maps a device to the same partition. */
export function partitionOf(deviceId: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) {
    h ^= deviceId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % partitions;
}
