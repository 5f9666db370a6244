/**
 * Stream framing for raw TCP devices (ARCHITECTURE §4 "TCP"): turns a byte stream into whole frames
 * whatever the segmentation (粘包/拆包: split and coalesced writes), and wraps bytes into a frame
 * for the way back. A framer holds at most one frame's bytes; anything past `maxFrame` is an error.
 */

/**
 * How a product's TCP stream is cut into frames: the plugin module's `Framing` (runtime/plugins,
 * docs/plugin-abi.md), declared by a plugin in `meta().framing` or by a product in `transport.tcp.framing`.
 */
import type { Framing } from '../plugins/index.ts';

export type { Framing };

export class FramingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FramingError';
  }
}

export interface Framer {
  /** Feeds bytes; answers the frames completed by them (possibly none). Throws FramingError. */
  push(chunk: Buffer): Buffer[];
  /** bytes held for the frame in progress */
  buffered(): number;
}

export const DEFAULT_MAX_FRAME = 64 * 1024;

/** Validates a framing declaration from JSON and fills its defaults; throws FramingError with the reason. */
export function parseFraming(raw: unknown): Framing {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new FramingError('framing must be an object with a type');
  const f = raw as Record<string, unknown>;
  const int = (name: string, min: number, max: number, fallback?: number): number => {
    const v = f[name];
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new FramingError(`framing.${name} must be an integer ${min}..${max}`);
    return v;
  };
  const allowed = (keys: string[]) => {
    for (const k of Object.keys(f)) if (k !== 'type' && !keys.includes(k)) throw new FramingError(`framing.${k} is not a ${String(f.type)} framing setting`);
  };
  const max = () => int('max', 1, 16 * 1024 * 1024, DEFAULT_MAX_FRAME);
  switch (f.type) {
    case 'length': {
      allowed(['offset', 'bytes', 'endian', 'adjust', 'max']);
      const bytes = int('bytes', 1, 4);
      if (bytes === 3) throw new FramingError('framing.bytes must be 1, 2 or 4');
      const endian = f.endian ?? 'be';
      if (endian !== 'be' && endian !== 'le') throw new FramingError("framing.endian must be 'be' or 'le'");
      return { type: 'length', offset: int('offset', 0, 1024, 0), bytes: bytes as 1 | 2 | 4, endian, adjust: int('adjust', -1024, 1024, 0), max: max() };
    }
    case 'delimiter': {
      allowed(['delimiter', 'keep', 'max']);
      const d = f.delimiter ?? '0a';
      if (typeof d !== 'string' || !/^([0-9a-fA-F]{2}){1,16}$/.test(d)) throw new FramingError('framing.delimiter must be 1-16 bytes as hex, e.g. "0d0a"');
      if (f.keep !== undefined && typeof f.keep !== 'boolean') throw new FramingError('framing.keep must be true or false');
      return { type: 'delimiter', delimiter: d.toLowerCase(), keep: f.keep === true, max: max() };
    }
    case 'fixed':
      allowed(['size', 'max']);
      return { type: 'fixed', size: int('size', 1, 16 * 1024 * 1024), max: max() };
    case 'modbus-tcp':
      allowed(['max']);
      return { type: 'modbus-tcp', max: int('max', 8, 16 * 1024 * 1024, 260) };
    default:
      throw new FramingError(`unknown framing type ${JSON.stringify(f.type)} (length, delimiter, fixed, modbus-tcp)`);
  }
}

/** Collects chunks without copying until a frame is complete. */
class Pending {
  chunks: Buffer[] = [];
  length = 0;
  add(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }
  /** the first `n` bytes (n <= length), without consuming */
  peek(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    if (this.chunks[0]!.length >= n) return this.chunks[0]!.subarray(0, n);
    return Buffer.concat(this.chunks, this.length).subarray(0, n);
  }
  take(n: number): Buffer {
    let out: Buffer;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      const all = Buffer.concat(this.chunks, this.length);
      out = all.subarray(0, n);
      this.chunks = n < all.length ? [all.subarray(n)] : [];
    }
    this.length -= n;
    return out;
  }
  flat(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.length)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }
}

function readLength(b: Buffer, at: number, bytes: 1 | 2 | 4, endian: 'be' | 'le'): number {
  if (bytes === 1) return b.readUInt8(at);
  if (bytes === 2) return endian === 'be' ? b.readUInt16BE(at) : b.readUInt16LE(at);
  return endian === 'be' ? b.readUInt32BE(at) : b.readUInt32LE(at);
}

export function createFramer(framing: Framing): Framer {
  const maxFrame = framing.max;
  const pending = new Pending();
  let frameSize = -1; // known size of the frame in progress
  const sized = (headerLen: number, sizeOf: (header: Buffer) => number) => (frames: Buffer[]) => {
    for (;;) {
      if (frameSize < 0) {
        if (pending.length < headerLen) return;
        frameSize = sizeOf(pending.peek(headerLen));
        if (frameSize > maxFrame) throw new FramingError(`frame of ${frameSize} bytes exceeds the limit of ${maxFrame}`);
        if (frameSize < headerLen) throw new FramingError(`frame length ${frameSize} is shorter than its header (${headerLen} bytes)`);
      }
      if (pending.length < frameSize) return;
      frames.push(Buffer.from(pending.take(frameSize)));
      frameSize = -1;
    }
  };
  let drain: (frames: Buffer[]) => void;
  switch (framing.type) {
    case 'length': {
      const headerLen = framing.offset + framing.bytes;
      drain = sized(headerLen, (h) => headerLen + readLength(h, framing.offset, framing.bytes, framing.endian) + framing.adjust);
      break;
    }
    case 'modbus-tcp':
      // MBAP: transaction id (2), protocol id (2, always 0), length (2: unit id + PDU), unit id (1).
      // A PDU is at most 253 bytes, so a valid ADU is at most 260 bytes (the default max).
      drain = sized(6, (h) => {
        if (h.readUInt16BE(2) !== 0) throw new FramingError(`not Modbus TCP: protocol id ${h.readUInt16BE(2)} (must be 0)`);
        const len = h.readUInt16BE(4);
        if (len < 2) throw new FramingError(`not Modbus TCP: MBAP length ${len} (must be at least 2)`);
        return 6 + len;
      });
      break;
    case 'fixed': {
      if (framing.size > maxFrame) throw new FramingError(`fixed frame size ${framing.size} exceeds the limit of ${maxFrame}`);
      drain = sized(0, () => framing.size);
      break;
    }
    case 'delimiter': {
      const delim = Buffer.from(framing.delimiter, 'hex');
      const keep = framing.keep ? delim.length : 0;
      let searchFrom = 0;
      drain = (frames) => {
        for (;;) {
          if (pending.length === 0) return;
          const buf = pending.flat();
          const at = buf.indexOf(delim, searchFrom);
          if (at < 0) {
            if (buf.length > maxFrame + delim.length) throw new FramingError(`no delimiter within ${maxFrame} bytes`);
            searchFrom = Math.max(0, buf.length - delim.length + 1);
            return;
          }
          if (at > maxFrame) throw new FramingError(`frame of ${at} bytes exceeds the limit of ${maxFrame}`);
          const frame = Buffer.from(buf.subarray(0, at + keep));
          pending.take(at + delim.length);
          searchFrom = 0;
          if (frame.length > keep) frames.push(frame); // empty frames (e.g. "\r\n\r\n" keep-alives) carry nothing
        }
      };
      break;
    }
  }
  return {
    push(chunk) {
      const frames: Buffer[] = [];
      pending.add(chunk);
      drain(frames);
      return frames;
    },
    buffered: () => pending.length,
  };
}

/** The part of a frame after its header (length framing) — where a login frame's JSON sits. */
export function framePayload(framing: Framing, frame: Buffer): Buffer {
  if (framing.type === 'length') return frame.subarray(framing.offset + framing.bytes);
  if (framing.type === 'delimiter' && framing.keep) return frame.subarray(0, frame.length - framing.delimiter.length / 2);
  return frame;
}

/**
 * Wraps `payload` into one frame: length framing prepends `offset` zero bytes and the length field,
 * delimiter framing appends the delimiter; fixed and Modbus TCP frames are written as they are
 * (a plugin's `encode` makes them whole).
 */
export function encodeFrame(framing: Framing, payload: Buffer): Buffer {
  switch (framing.type) {
    case 'length': {
      const header = Buffer.alloc(framing.offset + framing.bytes);
      const v = payload.length - framing.adjust;
      const max = framing.bytes === 4 ? 0xffffffff : (1 << (8 * framing.bytes)) - 1;
      if (v < 0 || v > max) throw new FramingError(`${payload.length} bytes do not fit a ${framing.bytes}-byte length field`);
      const le = framing.endian === 'le';
      if (framing.bytes === 1) header.writeUInt8(v, framing.offset);
      else if (framing.bytes === 2) {
        if (le) header.writeUInt16LE(v, framing.offset);
        else header.writeUInt16BE(v, framing.offset);
      } else if (le) header.writeUInt32LE(v, framing.offset);
      else header.writeUInt32BE(v, framing.offset);
      return Buffer.concat([header, payload]);
    }
    case 'delimiter':
      return Buffer.concat([payload, Buffer.from(framing.delimiter, 'hex')]);
    default:
      return payload;
  }
}
