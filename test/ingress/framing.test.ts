/** Framers: whole frames out whatever the segmentation, limits enforced, declarations validated. */
import assert from 'node:assert/strict';
import { createFramer, encodeFrame, parseFraming, tcpTransportOf, FramingError, type Framing } from '../../runtime/ingress/index.ts';

const mbap = (tid: number, unit: number, pdu: number[]) => {
  const b = Buffer.alloc(7 + pdu.length);
  b.writeUInt16BE(tid, 0);
  b.writeUInt16BE(0, 2);
  b.writeUInt16BE(pdu.length + 1, 4);
  b[6] = unit;
  Buffer.from(pdu).copy(b, 7);
  return b;
};

/** framing → frames that, concatenated, are the stream */
export const CASES: [string, Framing, Buffer[]][] = [
  ['length, 1 byte', parseFraming({ type: 'length', bytes: 1 }), ['a', 'hello', 'x'.repeat(200)].map((s) => encodeFrame(parseFraming({ type: 'length', bytes: 1 }), Buffer.from(s)))],
  ['length, 2 bytes BE after a 2-byte header', parseFraming({ type: 'length', bytes: 2, offset: 2 }), ['one', 'two!', 'z'.repeat(1000)].map((s) => encodeFrame(parseFraming({ type: 'length', bytes: 2, offset: 2 }), Buffer.from(s)))],
  ['length, 2 bytes LE with a trailing CRC (adjust 2)', parseFraming({ type: 'length', bytes: 2, endian: 'le', adjust: 2 }), ['ab', 'cdef'].map((s) => { const f = Buffer.alloc(2 + s.length + 2); f.writeUInt16LE(s.length, 0); f.write(s, 2); f.writeUInt16BE(0xbeef, 2 + s.length); return f; })],
  ['length, 4 bytes LE', parseFraming({ type: 'length', bytes: 4, endian: 'le' }), ['p', 'qq', 'rrr'].map((s) => encodeFrame(parseFraming({ type: 'length', bytes: 4, endian: 'le' }), Buffer.from(s)))],
  ['length, 4 bytes BE', parseFraming({ type: 'length', bytes: 4 }), ['p', 'qq'].map((s) => encodeFrame(parseFraming({ type: 'length', bytes: 4 }), Buffer.from(s)))],
  ['delimiter \\r\\n', parseFraming({ type: 'delimiter', delimiter: '0d0a' }), ['first', 'second line', 'x'].map((s) => Buffer.from(s + '\r\n'))],
  ['fixed 8 bytes', parseFraming({ type: 'fixed', size: 8 }), ['abcdefgh', '12345678', 'ABCDEFGH'].map((s) => Buffer.from(s))],
  ['Modbus TCP', parseFraming({ type: 'modbus-tcp' }), [mbap(1, 17, [3, 0, 0, 0, 2]), mbap(2, 17, [3, 4, 0, 1, 0, 2]), mbap(3, 9, [6, 0, 1, 0, 3])]],
];

/** What the framer should emit for a stream frame (delimiters are dropped unless `keep`). */
export const expected = (f: Framing, frame: Buffer) => (f.type === 'delimiter' && !f.keep ? frame.subarray(0, frame.length - f.delimiter.length / 2) : frame);

describe('framing', () => {
  for (const [name, framing, frames] of CASES) {
    describe(name, () => {
      const stream = Buffer.concat(frames);
      it('yields whole frames when the stream is split at every byte boundary', () => {
        for (let cut = 0; cut <= stream.length; cut++) {
          const f = createFramer(framing);
          const out = [...f.push(stream.subarray(0, cut)), ...f.push(stream.subarray(cut))];
          assert.deepEqual(out, frames.map((x) => expected(framing, x)), `cut at ${cut}`);
          assert.equal(f.buffered(), 0);
        }
      });
      it('yields whole frames one byte at a time and all at once', () => {
        const f1 = createFramer(framing);
        const out1: Buffer[] = [];
        for (const b of stream) out1.push(...f1.push(Buffer.from([b])));
        assert.deepEqual(out1, frames.map((x) => expected(framing, x)));
        assert.deepEqual(createFramer(framing).push(Buffer.concat([stream, stream])), [...frames, ...frames].map((x) => expected(framing, x)));
      });
    });
  }

  it('refuses a length field larger than max before buffering the frame', () => {
    const f = createFramer(parseFraming({ type: 'length', bytes: 4, max: 1024 }));
    assert.throws(() => f.push(Buffer.from([0, 0x10, 0, 0, 1, 2])), (e: Error) => e instanceof FramingError && /exceeds the limit of 1024/.test(e.message));
  });

  it('refuses a stream with no delimiter within max bytes', () => {
    const f = createFramer(parseFraming({ type: 'delimiter', delimiter: '0a', max: 100 }));
    f.push(Buffer.alloc(60, 0x41));
    assert.throws(() => f.push(Buffer.alloc(60, 0x41)), /no delimiter within 100 bytes/);
  });

  it('refuses bytes that are not Modbus TCP', () => {
    assert.throws(() => createFramer(parseFraming({ type: 'modbus-tcp' })).push(Buffer.from('GET / HTTP/1.1\r\n')), /not Modbus TCP/);
    assert.throws(() => createFramer(parseFraming({ type: 'modbus-tcp' })).push(Buffer.from([0, 1, 0, 0, 0x10, 0, 1])), /exceeds the limit of 260/);
  });

  it('refuses invalid declarations with the reason', () => {
    assert.throws(() => parseFraming({ type: 'length', bytes: 3 }), /bytes must be 1, 2 or 4/);
    assert.throws(() => parseFraming({ type: 'delimiter', delimiter: 'zz' }), /hex/);
    assert.throws(() => parseFraming({ type: 'fixed' }), /size/);
    assert.throws(() => parseFraming({ type: 'slip' }), /unknown framing type/);
    assert.throws(() => parseFraming({ type: 'fixed', size: 4, colour: 1 }), /colour is not a fixed framing setting/);
  });
});

describe('TCP transport declaration', () => {
  const modbus = parseFraming({ type: 'modbus-tcp' });
  it("falls back to the product plugin's declared framing when transport.tcp.framing is absent", () => {
    assert.deepEqual(tcpTransportOf({ transport: { tcp: { port: 0 } } }, modbus), { port: 0, framing: modbus });
  });
  it("prefers the product's own framing over the plugin's", () => {
    const t = tcpTransportOf({ transport: { tcp: { port: 0, framing: { type: 'fixed', size: 8 } } } }, modbus);
    assert.equal(t?.framing.type, 'fixed');
  });
  it('defaults to newline-delimited without either', () => {
    assert.equal(tcpTransportOf({ transport: { tcp: { port: 0 } } }, null)?.framing.type, 'delimiter');
  });
});
