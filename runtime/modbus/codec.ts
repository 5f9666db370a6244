/**
 * The register map: which registers hold which property, how their bits make a value (type, word
 * and byte order, scale, offset), and the few read requests that fetch a whole map.
 */
import { MAX_READ_BITS, MAX_READ_REGISTERS, type ReadFunction } from './frame.ts';

export type RegisterType = 'bool' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';
export type Order = 'big' | 'little';

export interface RegisterSpec {
  property: string;
  function: ReadFunction;
  address: number;
  quantity?: number;
  type?: RegisterType;
  /** big: the high word in the first register (default); little: the low word first */
  word_order?: Order;
  /** big: the high byte first inside each register (Modbus's own order, default); little: swapped */
  byte_order?: Order;
  scale?: number;
  offset?: number;
}

/** A register spec with every default filled in. */
export interface Register {
  property: string;
  function: ReadFunction;
  address: number;
  /** registers (FC3/4) or bits (FC1/2) */
  quantity: number;
  type: RegisterType;
  wordOrder: Order;
  byteOrder: Order;
  scale: number;
  offset: number;
}

/** registers per value of a type (bits for FC1/FC2 are always 1) */
export const TYPE_WIDTH: Record<RegisterType, number> = { bool: 1, int16: 1, uint16: 1, int32: 2, uint32: 2, float32: 2, float64: 4 };

export function normalizeRegister(r: RegisterSpec): Register {
  const type = r.type ?? (r.function <= 2 ? 'bool' : 'uint16');
  return {
    property: r.property,
    function: r.function,
    address: r.address,
    quantity: r.function <= 2 ? 1 : TYPE_WIDTH[type],
    type,
    wordOrder: r.word_order ?? 'big',
    byteOrder: r.byte_order ?? 'big',
    scale: r.scale ?? 1,
    offset: r.offset ?? 0,
  };
}

/** One read request of a plan and the registers whose values it carries. */
export interface ReadBlock {
  function: ReadFunction;
  address: number;
  quantity: number;
  registers: Register[];
}

/**
 * Merges the registers of a map into as few reads as Modbus allows: per function code, registers
 * that touch or overlap go into one request, up to 125 registers (2000 bits) each. Registers
 * separated by a gap are not merged: reading addresses the map does not name can make a slave
 * answer "Illegal Data Address" for the whole block.
 */
export function planReads(registers: Register[]): ReadBlock[] {
  const blocks: ReadBlock[] = [];
  for (const fn of [1, 2, 3, 4] as const) {
    const max = fn <= 2 ? MAX_READ_BITS : MAX_READ_REGISTERS;
    const list = registers.filter((r) => r.function === fn).sort((a, b) => a.address - b.address);
    let current: ReadBlock | undefined;
    for (const r of list) {
      const end = r.address + r.quantity;
      if (current && r.address <= current.address + current.quantity && Math.max(end, current.address + current.quantity) - current.address <= max) {
        current.quantity = Math.max(end, current.address + current.quantity) - current.address;
        current.registers.push(r);
      } else {
        current = { function: fn, address: r.address, quantity: r.quantity, registers: [r] };
        blocks.push(current);
      }
    }
  }
  return blocks;
}

/** The register bytes of one value in big-endian order (high word first, high byte first). */
function canonicalBytes(data: Buffer, byteIndex: number, words: number, r: Register): Buffer {
  const out = Buffer.allocUnsafe(words * 2);
  for (let w = 0; w < words; w++) {
    const src = byteIndex + (r.wordOrder === 'big' ? w : words - 1 - w) * 2;
    if (r.byteOrder === 'big') {
      out[w * 2] = data[src]!;
      out[w * 2 + 1] = data[src + 1]!;
    } else {
      out[w * 2] = data[src + 1]!;
      out[w * 2 + 1] = data[src]!;
    }
  }
  return out;
}

const round = (v: number) => (Number.isInteger(v) ? v : Math.round(v * 1e9) / 1e9);

/** The value of `r` in the data of its block (`data` = the bytes after a read response's byte count). */
export function decodeValue(block: ReadBlock, data: Buffer, r: Register): number | boolean {
  if (block.function <= 2) {
    const bit = r.address - block.address;
    return ((data[bit >> 3]! >> (bit & 7)) & 1) === 1;
  }
  const at = (r.address - block.address) * 2;
  if (r.type === 'bool') return data.readUInt16BE(at) !== 0;
  const b = canonicalBytes(data, at, r.quantity, r);
  let raw: number;
  switch (r.type) {
    case 'int16': raw = b.readInt16BE(0); break;
    case 'uint16': raw = b.readUInt16BE(0); break;
    case 'int32': raw = b.readInt32BE(0); break;
    case 'uint32': raw = b.readUInt32BE(0); break;
    case 'float32': raw = b.readFloatBE(0); break;
    case 'float64': raw = b.readDoubleBE(0); break;
  }
  // Scaled integers answer what the register means (453 × 0.1 = 45.3, not 45.300000000000004).
  return r.scale === 1 && r.offset === 0 ? raw : round(raw * r.scale + r.offset);
}

/** Values of every register of a block. */
export function decodeBlock(block: ReadBlock, data: Buffer, into: Record<string, number | boolean>): void {
  for (const r of block.registers) {
    const v = decodeValue(block, data, r);
    if (typeof v === 'number' && !Number.isFinite(v)) continue; // NaN/Infinity have no JSON form: the property is left out
    into[r.property] = v;
  }
}

const INT_RANGE: Partial<Record<RegisterType, [number, number]>> = {
  int16: [-0x8000, 0x7fff],
  uint16: [0, 0xffff],
  int32: [-0x80000000, 0x7fffffff],
  uint32: [0, 0xffffffff],
};

/**
 * The registers (16-bit words, in wire order) that hold `value` for `r`: the inverse of decodeValue.
 * Throws a RangeError naming the property when the value does not fit the type.
 */
export function encodeValue(r: Register, value: unknown): number[] | boolean[] {
  if (r.function <= 2 || r.type === 'bool') {
    if (typeof value !== 'boolean' && value !== 0 && value !== 1) throw new RangeError(`${r.property} is a ${r.type === 'bool' ? 'bool' : 'coil'}: send true or false`);
    return r.function <= 2 ? [value === true || value === 1] : [value === true || value === 1 ? 1 : 0];
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new RangeError(`${r.property} needs a finite number`);
  const raw = (value - r.offset) / r.scale;
  const b = Buffer.alloc(r.quantity * 2);
  const range = INT_RANGE[r.type];
  if (range) {
    const n = Math.round(raw);
    if (n < range[0] || n > range[1]) throw new RangeError(`${r.property} = ${value} is ${n} in the register, outside ${r.type} (${range[0]}…${range[1]})`);
    if (r.type === 'int16') b.writeInt16BE(n);
    else if (r.type === 'uint16') b.writeUInt16BE(n);
    else if (r.type === 'int32') b.writeInt32BE(n);
    else b.writeUInt32BE(n);
  } else {
    // writeFloatBE/writeDoubleBE do not range-check: a value past the type would reach the device as ±Infinity
    const max = r.type === 'float32' ? 3.4028234663852886e38 : Number.MAX_VALUE;
    if (!Number.isFinite(r.type === 'float32' ? Math.fround(raw) : raw)) throw new RangeError(`${r.property} = ${value} is ${raw} in the register, outside ${r.type} (±${max.toPrecision(5)})`);
    if (r.type === 'float32') b.writeFloatBE(raw);
    else b.writeDoubleBE(raw);
  }
  // canonicalBytes is its own inverse (a permutation of words and bytes that undoes itself)
  const wire = canonicalBytes(b, 0, r.quantity, r);
  const words: number[] = [];
  for (let i = 0; i < r.quantity; i++) words.push(wire.readUInt16BE(i * 2));
  return words;
}
