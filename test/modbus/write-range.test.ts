/**
 * A write of a value its float register cannot hold is refused (422 bad_value, docs/modbus.md "Writes"),
 * never sent: Buffer's writeFloatBE/writeDoubleBE do not range-check and would put ±Infinity on the device.
 */
import assert from 'node:assert/strict';
import { encodeValue, normalizeRegister } from '../../runtime/modbus/index.ts';
import { planWrites } from '../../runtime/modbus/writes.ts';
import { FluxError } from '../../runtime/errors/index.ts';

const f32 = normalizeRegister({ property: 'setpoint', function: 3, address: 0, type: 'float32' });
const f64 = normalizeRegister({ property: 'energy', function: 3, address: 2, type: 'float64' });
const scaled = normalizeRegister({ property: 'tiny', function: 3, address: 6, type: 'float64', scale: 1e-10 });

describe('modbus writes: float values out of their type', function () {
  it('refuses a float32 value past ±3.4e38, and a float64 one that scales past ±1.8e308, with 422 bad_value', function () {
    for (const [r, value] of [[f32, 1e300], [f32, -1e39], [scaled, 1e300], [scaled, -1e300]] as const) {
      assert.throws(() => encodeValue(r, value), RangeError, `${r.property} = ${value}`);
      assert.throws(
        () => planWrites([r], 'boiler', { property: r.property, value }),
        (e: unknown) => e instanceof FluxError && e.status === 422 && e.code === 'bad_value' && e.message.includes(r.type),
      );
    }
  });

  it('still writes the largest values each type holds', function () {
    assert.deepEqual(encodeValue(f32, 3.4028234663852886e38), [0x7f7f, 0xffff]);
    assert.deepEqual(encodeValue(f32, -45.25), [0xc235, 0x0000]);
    assert.deepEqual(encodeValue(f64, Number.MAX_VALUE), [0x7fef, 0xffff, 0xffff, 0xffff]);
  });
});
