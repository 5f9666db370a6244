/** The register codec and the frame layer: values from known register words, in every type and order; merged reads; CRC; frame splitting. */
import assert from 'node:assert/strict';
import { arrange, VECTORS, ORDERS } from './vectors.ts';
import {
  normalizeRegister, planReads, decodeBlock, encodeValue, crc16, rtuFrame, mbapFrame, MbapReader, RtuReader, checkResponse, readRequest, ModbusError,
  productModbusSchema, type RegisterSpec,
} from '../../runtime/modbus/index.ts';

describe('modbus register codec', function () {
  for (const v of VECTORS) {
    for (const [wordOrder, byteOrder] of ORDERS) {
      it(`${v.type} ${v.value} with word order ${wordOrder}, byte order ${byteOrder}: decoded from its registers and encoded back to them`, function () {
        const r = normalizeRegister({ property: 'x', function: 3, address: 10, type: v.type, word_order: wordOrder, byte_order: byteOrder });
        const words = arrange(v.words, wordOrder, byteOrder);
        const [block] = planReads([r]);
        const data = Buffer.alloc(words.length * 2);
        words.forEach((w, i) => data.writeUInt16BE(w, i * 2));
        const out: Record<string, number | boolean> = {};
        decodeBlock(block!, data, out);
        assert.equal(out.x, v.value);
        assert.deepEqual(encodeValue(r, v.value), words);
      });
    }
  }

  it('applies scale and offset both ways, without float noise (453 × 0.1 = 45.3)', function () {
    const r = normalizeRegister({ property: 't', function: 3, address: 0, type: 'int16', scale: 0.1 });
    const out: Record<string, number | boolean> = {};
    decodeBlock(planReads([r])[0]!, Buffer.from([0x01, 0xc5]), out);
    assert.equal(out.t, 45.3);
    assert.deepEqual(encodeValue(r, 42.5), [425]);
    const f = normalizeRegister({ property: 'f', function: 4, address: 0, type: 'uint16', scale: 0.5, offset: -40 });
    decodeBlock(planReads([f])[0]!, Buffer.from([0x00, 0x64]), out);
    assert.equal(out.f, 10);
  });

  it('refuses values that do not fit the register type', function () {
    const r = normalizeRegister({ property: 'sp', function: 3, address: 1, type: 'int16', scale: 0.1 });
    assert.throws(() => encodeValue(r, 5000), /sp = 5000 is 50000 in the register, outside int16/);
    assert.throws(() => encodeValue(r, 'hot'), /needs a finite number/);
    assert.throws(() => encodeValue(normalizeRegister({ property: 'c', function: 1, address: 0 }), 'on'), /send true or false/);
  });

  it('reads coils, discrete inputs and registers as bools', function () {
    const coils = [0, 3, 9].map((a) => normalizeRegister({ property: `c${a}`, function: 1, address: a }));
    const blocks = planReads(coils);
    assert.equal(blocks.length, 3, 'coils with gaps are separate reads');
    const all = planReads([0, 1, 2, 3].map((a) => normalizeRegister({ property: `c${a}`, function: 1, address: a })));
    assert.deepEqual(all.map((b) => [b.function, b.address, b.quantity]), [[1, 0, 4]]);
    const out: Record<string, number | boolean> = {};
    decodeBlock(all[0]!, Buffer.from([0b1010]), out);
    assert.deepEqual({ ...out }, { c0: false, c1: true, c2: false, c3: true });
    const reg = normalizeRegister({ property: 'on', function: 3, address: 0, type: 'bool' });
    decodeBlock(planReads([reg])[0]!, Buffer.from([0, 7]), out);
    assert.equal(out.on, true);
  });

  it('merges contiguous and overlapping registers into as few reads as Modbus allows, per function', function () {
    const regs = [
      { property: 'a', function: 3, address: 0, type: 'int16' },
      { property: 'b', function: 3, address: 1, type: 'float32' },
      { property: 'c', function: 3, address: 3, type: 'uint32' },
      { property: 'd', function: 3, address: 200, type: 'uint16' },
      { property: 'e', function: 4, address: 0, type: 'uint16' },
      { property: 'f', function: 4, address: 1, type: 'float64' },
    ].map((r) => normalizeRegister(r as RegisterSpec));
    assert.deepEqual(planReads(regs).map((b) => [b.function, b.address, b.quantity, b.registers.length]), [[3, 0, 5, 3], [3, 200, 1, 1], [4, 0, 5, 2]]);
    const many = Array.from({ length: 130 }, (_, i) => normalizeRegister({ property: `r${i}`, function: 3, address: i }));
    assert.deepEqual(planReads(many).map((b) => [b.address, b.quantity]), [[0, 125], [125, 5]], 'a read carries at most 125 registers');
  });

  it('validates a product register map with messages that name the field', function () {
    const bad = productModbusSchema.safeParse({ registers: [{ property: 'x', function: 1, address: 0, type: 'float32' }, { property: 'x', function: 3, address: 65535, type: 'uint32' }] });
    assert.equal(bad.success, false);
    const text = JSON.stringify(bad.error!.issues);
    assert.match(text, /function 1 reads bits: type must be bool/);
    assert.match(text, /runs past register 65535/);
    assert.match(text, /mapped twice/);
    const ok = productModbusSchema.parse({ registers: [{ property: 't', function: 3, address: 0 }] });
    assert.equal(ok.interval_ms, 1000);
    assert.equal(ok.timeout_ms, 1000);
  });
});

describe('modbus frames', function () {
  it('computes CRC-16/MODBUS (the spec example 01 03 00 00 00 0A → C5 CD)', function () {
    const frame = rtuFrame(1, readRequest(3, 0, 10));
    assert.equal(frame.toString('hex'), '01030000000ac5cd');
    assert.equal(crc16(Buffer.from('123456789')), 0x4b37);
  });

  it('splits Modbus TCP streams split or coalesced anywhere, and refuses a bad header', function () {
    const a = mbapFrame(7, 1, Buffer.from([3, 2, 0x01, 0xc5]));
    const b = mbapFrame(8, 2, Buffer.from([0x83, 2]));
    const all = Buffer.concat([a, b]);
    for (let cut = 0; cut <= all.length; cut++) {
      const got: [number, number, string][] = [];
      const r = new MbapReader();
      r.push(all.subarray(0, cut), (t, u, p) => got.push([t, u, p.toString('hex')]));
      r.push(all.subarray(cut), (t, u, p) => got.push([t, u, p.toString('hex')]));
      assert.deepEqual(got, [[7, 1, '030201c5'], [8, 2, '8302']]);
    }
    assert.throws(() => new MbapReader().push(Buffer.from('0001000100ff01', 'hex'), () => {}), /bad MBAP header/);
  });

  it('splits RTU responses by their function code and refuses a bad CRC', function () {
    const frames = Buffer.concat([rtuFrame(1, Buffer.from([3, 2, 0x01, 0xc5])), rtuFrame(2, Buffer.from([0x86, 2])), rtuFrame(3, Buffer.from([6, 0, 1, 0, 42]))]);
    for (let cut = 0; cut <= frames.length; cut++) {
      const got: string[] = [];
      const r = new RtuReader();
      r.push(frames.subarray(0, cut), (u, p) => got.push(`${u}:${p.toString('hex')}`));
      r.push(frames.subarray(cut), (u, p) => got.push(`${u}:${p.toString('hex')}`));
      assert.deepEqual(got, ['1:030201c5', '2:8602', '3:060001002a']);
    }
    const broken = rtuFrame(1, Buffer.from([3, 2, 0x01, 0xc5]));
    broken[3]! ^= 0xff;
    assert.throws(() => new RtuReader().push(broken, () => {}), /bad CRC/);
  });

  it('names slave exceptions and checks response lengths', function () {
    const req = readRequest(3, 0, 2);
    assert.throws(() => checkResponse(req, Buffer.from([0x83, 2])), (e: ModbusError) => e.reason === 'exception' && e.exceptionCode === 2 && /Illegal Data Address/.test(e.message));
    assert.throws(() => checkResponse(req, Buffer.from([3, 2, 0, 1])), /expected 4/);
    assert.deepEqual([...checkResponse(req, Buffer.from([3, 4, 0, 1, 0, 2]))], [0, 1, 0, 2]);
  });
});
