/** Register vectors shared by the codec and master tests. */
import type { RegisterSpec } from '../../runtime/modbus/index.ts';

/** Words as a big-endian device sends them, reordered the way `word_order`/`byte_order` say. */
export function arrange(bigEndianWords: number[], wordOrder: 'big' | 'little', byteOrder: 'big' | 'little'): number[] {
  const words = wordOrder === 'big' ? [...bigEndianWords] : [...bigEndianWords].reverse();
  return byteOrder === 'big' ? words : words.map((w) => ((w & 0xff) << 8) | (w >> 8));
}

/** Known values and their registers, high word first (IEEE 754 and two's complement, written out by hand). */
export const VECTORS: { type: RegisterSpec['type']; value: number; words: number[] }[] = [
  { type: 'int16', value: -2, words: [0xfffe] },
  { type: 'uint16', value: 65_000, words: [0xfde8] },
  { type: 'int32', value: -100_000, words: [0xfffe, 0x7960] },
  { type: 'uint32', value: 0x12345678, words: [0x1234, 0x5678] },
  { type: 'float32', value: 45.25, words: [0x4235, 0x0000] },
  { type: 'float64', value: -1.5, words: [0xbff8, 0x0000, 0x0000, 0x0000] },
];

export const ORDERS = [
  ['big', 'big'],
  ['little', 'big'],
  ['big', 'little'],
  ['little', 'little'],
] as const;
