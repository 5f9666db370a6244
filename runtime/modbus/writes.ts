/**
 * The register writes a `write` command asks for ({property, value} or {values}), checked against
 * the product's register map and encoded as Modbus requests (runtime/modbus/master.ts sends them).
 */
import { FluxError } from '../errors/index.ts';
import { encodeValue, type Register } from './codec.ts';
import { writeCoilsRequest, writeRegistersRequest } from './frame.ts';

export interface PlannedWrite {
  property: string;
  value: number | boolean;
  pdu: Buffer;
}

export function planWrites(registers: Register[], productKey: string, params: unknown): PlannedWrite[] {
  const p = (params ?? {}) as { property?: unknown; value?: unknown; values?: unknown };
  const pairs: [string, unknown][] =
    typeof p.property === 'string' ? [[p.property, p.value]] : p.values && typeof p.values === 'object' && !Array.isArray(p.values) ? Object.entries(p.values) : [];
  if (!pairs.length) throw new FluxError('bad_request', 'write needs params {"property": "<name>", "value": <value>} or {"values": {"<name>": <value>, …}}', 400);
  if (pairs.length > 100) throw new FluxError('bad_request', 'write takes at most 100 properties at once', 400);
  return pairs.map(([property, value]) => {
    const r = registers.find((x) => x.property === property);
    if (!r) throw new FluxError('unknown_property', `property '${property}' is not in the register map of product '${productKey}'`, 422);
    if (r.function === 2 || r.function === 4) throw new FluxError('not_writable', `property '${property}' is read with function ${r.function} (${r.function === 2 ? 'discrete input' : 'input register'}), which cannot be written`, 422);
    let words: number[] | boolean[];
    try {
      words = encodeValue(r, value);
    } catch (err) {
      throw new FluxError('bad_value', (err as Error).message, 422);
    }
    const pdu = r.function === 1 ? writeCoilsRequest(r.address, words as boolean[]) : writeRegistersRequest(r.address, words as number[]);
    return { property, value: value as number | boolean, pdu };
  });
}
