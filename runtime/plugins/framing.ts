/**
 * TCP framing a plugin declares in `meta().framing` (docs/broker.md "TCP ingress": frames on a
 * product's TCP port are split by the plugin's framing), its validation, and a stream splitter the
 * TCP ingress can use. The JSON shape is documented in docs/plugin-abi.md ("Framing").
 */
import { z } from 'zod';

/** Largest frame accepted when a framing gives no `max` (a length field could claim 4 GiB). */
export const DEFAULT_MAX_FRAME = 65_536;

/**
 * `length`: a length field of `bytes` (1, 2, 4) at `offset`, big or little endian; the frame is
 * `offset + bytes + value + adjust` bytes long (value counts the bytes after the field; `adjust`
 * corrects protocols whose value counts something else, e.g. -2 when it includes the field, or +2
 * for a trailing CRC it leaves out).
 * `delimiter`: frames end with the `delimiter` bytes (hex, e.g. "0d0a"); `keep` leaves them on.
 * `fixed`: every frame is `size` bytes. `modbus-tcp`: the MBAP header (length at offset 4, 2 bytes BE).
 */
export type Framing =
  | { type: 'length'; offset: number; bytes: 1 | 2 | 4; endian: 'be' | 'le'; adjust: number; max: number }
  | { type: 'delimiter'; delimiter: string; keep: boolean; max: number }
  | { type: 'fixed'; size: number; max: number }
  | { type: 'modbus-tcp'; max: number };

const max = z.number().int().min(1).max(16 * 1024 * 1024).default(DEFAULT_MAX_FRAME);
const framingSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('length'),
    offset: z.number().int().min(0).max(1024).default(0),
    bytes: z.union([z.literal(1), z.literal(2), z.literal(4)]),
    endian: z.enum(['be', 'le']).default('be'),
    adjust: z.number().int().min(-1024).max(1024).default(0),
    max,
  }).strict(),
  z.object({
    type: z.literal('delimiter'),
    delimiter: z.string().regex(/^([0-9a-fA-F]{2}){1,16}$/, 'must be 1-16 bytes as hex, e.g. "0d0a"').transform((s) => s.toLowerCase()),
    keep: z.boolean().default(false),
    max,
  }).strict(),
  z.object({ type: z.literal('fixed'), size: z.number().int().min(1).max(16 * 1024 * 1024), max }).strict(),
  z.object({ type: z.literal('modbus-tcp'), max: max.default(260) }).strict(),
]);

/** Validates a framing declaration (from a plugin's meta or a product's transport settings). Throws with the reason. */
export function parseFraming(value: unknown): Framing {
  const r = framingSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new Error(`framing${issue.path.length ? '.' + issue.path.join('.') : ''}: ${issue.message}`);
  }
  return r.data as Framing;
}

/** A stateful splitter for one connection: push bytes, get the complete frames. Throws on a frame over `max`. */
export interface FrameSplitter {
  push(chunk: Buffer): Buffer[];
  /** bytes waiting for the rest of their frame */
  readonly buffered: number;
}

export function createFrameSplitter(framing: Framing): FrameSplitter {
  let buf: Buffer = Buffer.alloc(0);
  const delimiter = framing.type === 'delimiter' ? Buffer.from(framing.delimiter, 'hex') : undefined;

  /** Length of the frame at the head of `buf`, or 0 when more bytes are needed. */
  function nextLength(): number {
    switch (framing.type) {
      case 'fixed':
        return buf.length >= framing.size ? framing.size : 0;
      case 'modbus-tcp':
        if (buf.length < 6) return 0;
        return check(6 + buf.readUInt16BE(4));
      case 'length': {
        const end = framing.offset + framing.bytes;
        if (buf.length < end) return 0;
        const o = framing.offset;
        const le = framing.endian === 'le';
        const v = framing.bytes === 1 ? buf[o]! : framing.bytes === 2 ? (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o)) : le ? buf.readUInt32LE(o) : buf.readUInt32BE(o);
        const total = end + v + framing.adjust;
        if (total <= 0) throw new Error(`framing: length field ${v} gives an empty frame`);
        return check(total);
      }
      case 'delimiter': {
        const at = buf.indexOf(delimiter!);
        if (at < 0) {
          if (buf.length > framing.max) throw new Error(`framing: no delimiter within ${framing.max} bytes`);
          return 0;
        }
        return at + delimiter!.length;
      }
    }
  }
  function check(total: number): number {
    if (total > framing.max) throw new Error(`framing: frame of ${total} bytes is over the ${framing.max}-byte maximum`);
    return buf.length >= total ? total : 0;
  }

  return {
    get buffered() {
      return buf.length;
    },
    push(chunk) {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const frames: Buffer[] = [];
      for (;;) {
        const n = nextLength();
        if (n === 0) break;
        let frame = buf.subarray(0, n);
        if (delimiter && framing.type === 'delimiter' && !framing.keep) frame = frame.subarray(0, n - delimiter.length);
        // Copied: the frame outlives this chunk (it is queued for a worker) and must not pin the socket's buffer.
        frames.push(Buffer.from(frame));
        buf = buf.subarray(n);
      }
      if (buf.length === 0) buf = Buffer.alloc(0);
      return frames;
    },
  };
}
