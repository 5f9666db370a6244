/**
 * Modbus on the wire: request PDUs, response checks, exception names, the MBAP header of Modbus TCP
 * and the RTU frame (unit, PDU, CRC-16) that RTU-over-TCP carries. Every length comes from the
 * frame and is checked against the Modbus limits before anything is buffered.
 */

/** The largest PDU Modbus allows (function code + 252 bytes). */
export const MAX_PDU = 253;
/** registers per read (FC3/FC4) and per write (FC16), bits per read (FC1/FC2) and per write (FC15) */
export const MAX_READ_REGISTERS = 125;
export const MAX_WRITE_REGISTERS = 123;
export const MAX_READ_BITS = 2000;
export const MAX_WRITE_BITS = 1968;

export type ReadFunction = 1 | 2 | 3 | 4;

const EXCEPTIONS: Record<number, string> = {
  1: 'Illegal Function',
  2: 'Illegal Data Address',
  3: 'Illegal Data Value',
  4: 'Server Device Failure',
  5: 'Acknowledge',
  6: 'Server Device Busy',
  8: 'Memory Parity Error',
  10: 'Gateway Path Unavailable',
  11: 'Gateway Target Device Failed to Respond',
};

export function exceptionName(code: number): string {
  return EXCEPTIONS[code] ?? `Exception ${code}`;
}

/** Why a request failed: the `reason` is what a device's status and the error counters show. */
export type FailureReason = 'timeout' | 'exception' | 'connection' | 'protocol' | 'queue_full' | 'closed';

export class ModbusError extends Error {
  readonly reason: FailureReason;
  /** the slave's exception code, for reason `exception` */
  readonly exceptionCode?: number;
  constructor(reason: FailureReason, message: string, exceptionCode?: number) {
    super(message);
    this.name = 'ModbusError';
    this.reason = reason;
    this.exceptionCode = exceptionCode;
  }
}

export function readRequest(fn: ReadFunction, address: number, quantity: number): Buffer {
  const pdu = Buffer.allocUnsafe(5);
  pdu[0] = fn;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(quantity, 3);
  return pdu;
}

/** FC5 (one coil) or FC15 (several). */
export function writeCoilsRequest(address: number, bits: boolean[]): Buffer {
  if (bits.length === 1) {
    const pdu = Buffer.allocUnsafe(5);
    pdu[0] = 5;
    pdu.writeUInt16BE(address, 1);
    pdu.writeUInt16BE(bits[0] ? 0xff00 : 0x0000, 3);
    return pdu;
  }
  const bytes = Math.ceil(bits.length / 8);
  const pdu = Buffer.alloc(6 + bytes);
  pdu[0] = 15;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(bits.length, 3);
  pdu[5] = bytes;
  bits.forEach((b, i) => {
    if (b) pdu[6 + (i >> 3)]! |= 1 << (i & 7);
  });
  return pdu;
}

/** FC6 (one register) or FC16 (several). `words` are 16-bit register values. */
export function writeRegistersRequest(address: number, words: number[], forceMultiple = false): Buffer {
  if (words.length === 1 && !forceMultiple) {
    const pdu = Buffer.allocUnsafe(5);
    pdu[0] = 6;
    pdu.writeUInt16BE(address, 1);
    pdu.writeUInt16BE(words[0]!, 3);
    return pdu;
  }
  const pdu = Buffer.allocUnsafe(6 + words.length * 2);
  pdu[0] = 16;
  pdu.writeUInt16BE(address, 1);
  pdu.writeUInt16BE(words.length, 3);
  pdu[5] = words.length * 2;
  words.forEach((w, i) => pdu.writeUInt16BE(w, 6 + i * 2));
  return pdu;
}

/**
 * Checks a response PDU against its request: an exception becomes a ModbusError naming it, a
 * mismatched function code or length a protocol error. Answers the data of a read (the bytes after
 * the byte count) or the echo of a write.
 */
export function checkResponse(request: Buffer, response: Buffer): Buffer {
  const fn = request[0]!;
  if (response.length < 2) throw new ModbusError('protocol', `response of ${response.length} byte(s) is too short`);
  if (response[0] === (fn | 0x80)) {
    const code = response[1]!;
    throw new ModbusError('exception', `exception ${code} (${exceptionName(code)})`, code);
  }
  if (response[0] !== fn) throw new ModbusError('protocol', `response function ${response[0]} does not match request function ${fn}`);
  if (fn >= 1 && fn <= 4) {
    const quantity = request.readUInt16BE(3);
    const expected = fn <= 2 ? Math.ceil(quantity / 8) : quantity * 2;
    if (response[1] !== expected || response.length !== 2 + expected) {
      throw new ModbusError('protocol', `read response carries ${response[1]} byte(s) in ${response.length - 2}; expected ${expected}`);
    }
    return response.subarray(2);
  }
  if (response.length !== 5 || response.readUInt16BE(1) !== request.readUInt16BE(1)) {
    throw new ModbusError('protocol', `write response does not echo the request (address ${request.readUInt16BE(1)})`);
  }
  return response;
}

/** The length of a whole response PDU once its first bytes are in (RTU has no length field), or 0 if more bytes are needed. */
export function responsePduLength(head: Buffer, offset: number, available: number): number {
  if (available < 2) return 0;
  const fn = head[offset]!;
  if (fn & 0x80) return 2;
  if (fn >= 1 && fn <= 4) return 2 + head[offset + 1]!;
  if (fn === 5 || fn === 6 || fn === 15 || fn === 16) return 5;
  return -1; // a function this master never sends
}

// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), table-driven.
const CRC_TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
  CRC_TABLE[i] = c;
}

export function crc16(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = 0xffff;
  for (let i = start; i < end; i++) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ buf[i]!) & 0xff]!;
  return crc;
}

/** MBAP header + unit + PDU. */
export function mbapFrame(transactionId: number, unit: number, pdu: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(7 + pdu.length);
  frame.writeUInt16BE(transactionId, 0);
  frame.writeUInt16BE(0, 2);
  frame.writeUInt16BE(pdu.length + 1, 4);
  frame[6] = unit;
  pdu.copy(frame, 7);
  return frame;
}

/** Unit + PDU + CRC (low byte first). */
export function rtuFrame(unit: number, pdu: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(pdu.length + 3);
  frame[0] = unit;
  pdu.copy(frame, 1);
  frame.writeUInt16LE(crc16(frame, 0, pdu.length + 1), pdu.length + 1);
  return frame;
}

/**
 * Splits a Modbus TCP byte stream into frames. The buffer never holds more than one frame (260
 * bytes); a header outside the limits is a protocol error and the connection is dropped.
 */
export class MbapReader {
  #buf = Buffer.alloc(0);
  /** Feeds bytes; calls `onFrame` per whole frame. Throws ModbusError('protocol') on a bad header. */
  push(chunk: Buffer, onFrame: (transactionId: number, unit: number, pdu: Buffer) => void): void {
    let buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    while (buf.length >= 7) {
      const protocol = buf.readUInt16BE(2);
      const length = buf.readUInt16BE(4);
      if (protocol !== 0 || length < 2 || length > MAX_PDU + 1) {
        this.#buf = Buffer.alloc(0);
        throw new ModbusError('protocol', `bad MBAP header (protocol ${protocol}, length ${length})`);
      }
      if (buf.length < 6 + length) break;
      onFrame(buf.readUInt16BE(0), buf[6]!, buf.subarray(7, 6 + length));
      buf = buf.subarray(6 + length);
    }
    this.#buf = buf.length ? Buffer.from(buf) : Buffer.alloc(0);
  }
  /** forgets a partial frame (a new connection starts at a frame boundary) */
  clear(): void {
    this.#buf = Buffer.alloc(0);
  }
}

/**
 * Splits an RTU byte stream into frames, knowing that one request at a time is outstanding: the
 * length of a response follows from its function code. A frame with a bad CRC throws (the caller
 * drops what is buffered: RTU has no way to find the next frame start reliably).
 */
export class RtuReader {
  #buf = Buffer.alloc(0);
  push(chunk: Buffer, onFrame: (unit: number, pdu: Buffer) => void): void {
    let buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk;
    while (buf.length >= 3) {
      const pduLength = responsePduLength(buf, 1, buf.length - 1);
      if (pduLength < 0) {
        this.#buf = Buffer.alloc(0);
        throw new ModbusError('protocol', `unexpected function code ${buf[1]} in an RTU frame`);
      }
      if (pduLength === 0 || buf.length < pduLength + 3) break;
      const end = pduLength + 1;
      if (crc16(buf, 0, end) !== buf.readUInt16LE(end)) {
        this.#buf = Buffer.alloc(0);
        throw new ModbusError('protocol', 'bad CRC in an RTU frame');
      }
      onFrame(buf[0]!, buf.subarray(1, end));
      buf = buf.subarray(end + 2);
    }
    this.#buf = buf.length ? Buffer.from(buf) : Buffer.alloc(0);
  }
  clear(): void {
    this.#buf = Buffer.alloc(0);
  }
}
