/**
 * Stream framing for raw TCP devices (docs/broker.md "TCP ingress"): turns a byte stream into whole frames
 * whatever the segmentation (粘包/拆包: split and coalesced writes), and wraps bytes into a frame
 * for the way back. A framer holds at most one frame's bytes; anything past `maxFrame` is an error.
 */

/**
 * How a product's TCP stream is cut into frames, declared by a plugin in `meta().framing` or by a
 * product in `transport.tcp.framing` (docs/plugin-abi.md "Framing").
 *
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

export class FramingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FramingError';
  }
}

export interface Framer {
  /**
   * Feeds bytes; answers the frames completed by them (possibly none), at most `maxFrames`: the rest
   * stays buffered, unread, for a later push (an empty chunk takes the next ones). Throws FramingError.
   */
  push(chunk: Buffer, maxFrames?: number): Buffer[];
  /** bytes held for the frame in progress */
  buffered(): number;
  /**
   * Sets the largest frame accepted from now on (at most the framing's own `max`): the TCP ingress
   * keeps it small until a connection is identified. It applies to the frames the next push() completes.
   */
  limit(max: number): void;
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

/**
 * The bytes of the frame in progress, in one buffer that grows by doubling and is compacted in place:
 * a stream trickled in byte by byte costs O(1) per byte. (A list of chunks flattened on every read
 * copied everything buffered per byte, quadratic work for an unidentified connection; and it kept
 * one Buffer object per 1-byte chunk.) Emptied, a large buffer is let go.
 */
class Pending {
  #buf: Buffer = Buffer.alloc(0);
  #start = 0;
  #end = 0;
  get length(): number {
    return this.#end - this.#start;
  }
  add(b: Buffer): void {
    if (b.length === 0) return;
    if (this.#end + b.length > this.#buf.length) {
      const live = this.length;
      if (live + b.length <= this.#buf.length >> 1) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        const next = Buffer.allocUnsafe(Math.max(live + b.length, this.#buf.length * 2, 256));
        this.#buf.copy(next, 0, this.#start, this.#end);
        this.#buf = next;
      }
      this.#start = 0;
      this.#end = live;
    }
    b.copy(this.#buf, this.#end);
    this.#end += b.length;
  }
  /** the buffered bytes, valid until the next add() or skip() */
  view(): Buffer {
    return this.#buf.subarray(this.#start, this.#end);
  }
  skip(n: number): void {
    this.#start += n;
    if (this.#start >= this.#end) {
      this.#start = this.#end = 0;
      if (this.#buf.length > 64 * 1024) this.#buf = Buffer.alloc(0);
    }
  }
}

function readLength(b: Buffer, at: number, bytes: 1 | 2 | 4, endian: 'be' | 'le'): number {
  if (bytes === 1) return b.readUInt8(at);
  if (bytes === 2) return endian === 'be' ? b.readUInt16BE(at) : b.readUInt16LE(at);
  return endian === 'be' ? b.readUInt32BE(at) : b.readUInt32LE(at);
}

/** Cuts whole frames from `buf` into `frames`, at most `max`; answers how many bytes they used (the rest waits). */
type Drain = (buf: Buffer, frames: Buffer[], max: number) => number;

export function createFramer(framing: Framing): Framer {
  let maxFrame = framing.max;
  const pending = new Pending();
  const sized =
    (headerLen: number, sizeOf: (buf: Buffer, at: number) => number): Drain =>
    (buf, frames, max) => {
      let at = 0;
      for (;;) {
        if (buf.length - at < headerLen || buf.length - at === 0 || frames.length >= max) return at;
        const frameSize = sizeOf(buf, at);
        if (frameSize > maxFrame) throw new FramingError(`frame of ${frameSize} bytes exceeds the limit of ${maxFrame}`);
        if (frameSize < headerLen) throw new FramingError(`frame length ${frameSize} is shorter than its header (${headerLen} bytes)`);
        if (frameSize === 0 || buf.length - at < frameSize) return at;
        frames.push(Buffer.from(buf.subarray(at, at + frameSize)));
        at += frameSize;
      }
    };
  let drain: Drain;
  switch (framing.type) {
    case 'length': {
      const headerLen = framing.offset + framing.bytes;
      drain = sized(headerLen, (b, at) => headerLen + readLength(b, at + framing.offset, framing.bytes, framing.endian) + framing.adjust);
      break;
    }
    case 'modbus-tcp':
      // MBAP: transaction id (2), protocol id (2, always 0), length (2: unit id + PDU), unit id (1).
      // A PDU is at most 253 bytes, so a valid ADU is at most 260 bytes (the default max).
      drain = sized(6, (b, at) => {
        if (b.readUInt16BE(at + 2) !== 0) throw new FramingError(`not Modbus TCP: protocol id ${b.readUInt16BE(at + 2)} (must be 0)`);
        const len = b.readUInt16BE(at + 4);
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
      // bytes at the front of what is buffered already searched without finding a delimiter start:
      // each byte is searched about once, however the stream is cut
      let searched = 0;
      drain = (buf, frames, max) => {
        let at = 0;
        for (;;) {
          if (at === buf.length || frames.length >= max) {
            if (at === buf.length) searched = 0;
            return at;
          }
          const end = buf.indexOf(delim, at + searched);
          if (end < 0) {
            if (buf.length - at > maxFrame + delim.length) throw new FramingError(`no delimiter within ${maxFrame} bytes`);
            searched = Math.max(0, buf.length - at - delim.length + 1);
            return at;
          }
          if (end - at > maxFrame) throw new FramingError(`frame of ${end - at} bytes exceeds the limit of ${maxFrame}`);
          if (end - at + keep > keep) frames.push(Buffer.from(buf.subarray(at, end + keep))); // empty frames (e.g. "\r\n\r\n" keep-alives) carry nothing
          at = end + delim.length;
          searched = 0;
        }
      };
      break;
    }
  }
  return {
    push(chunk, maxFrames = Infinity) {
      const frames: Buffer[] = [];
      if (pending.length === 0) {
        // the usual case: whole frames in one read, cut from the chunk itself
        const used = drain(chunk, frames, maxFrames);
        if (used < chunk.length) pending.add(chunk.subarray(used));
      } else {
        pending.add(chunk);
        pending.skip(drain(pending.view(), frames, maxFrames));
      }
      return frames;
    },
    buffered: () => pending.length,
    limit(max) {
      maxFrame = Math.min(Math.max(1, max), framing.max);
    },
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
