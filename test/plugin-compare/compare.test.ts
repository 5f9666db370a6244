/** The comparison replay and shadow mode make: equal JSON with keys in any order, failures apart. */
import assert from 'node:assert/strict';
import { sameJson } from '../../runtime/plugin-compare/index.ts';
import { SIDE_MAX_CHARS, sideOf } from '../../runtime/plugin-compare/compare.ts';

describe('plugin compare: sameJson', () => {
  it('is true for equal JSON whatever the key order, false for any other value', () => {
    assert.equal(sameJson({ device_id: 'd', values: { a: 1, b: [1, { c: true }] } }, { values: { b: [1, { c: true }], a: 1 }, device_id: 'd' }), true);
    assert.equal(sameJson([{ a: 1 }, { b: 2 }], [{ a: 1 }, { b: 2 }]), true);
    const different: [unknown, unknown][] = [
      [{ a: 1 }, { a: 2 }],
      [{ a: 1 }, { a: 1, b: 2 }],
      [{ a: 1, b: 2 }, { a: 1 }],
      [{ a: 1 }, { b: 1 }],
      [[1, 2], [2, 1]],
      [[1], { 0: 1 }],
      [{ 0: 1 }, [1]],
      [{ a: null }, { a: {} }],
      [{ a: '1' }, { a: 1 }],
      [[{ a: 1 }], [{ a: 1 }, { a: 1 }]],
    ];
    for (const [a, b] of different) assert.equal(sameJson(a, b), false, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  });

  it('keeps a diff side whole up to 8 KiB of JSON, else its first 8 KiB and its size', () => {
    assert.deepEqual(sideOf({ ok: true, value: { values: { a: 1 } } }), { output: { values: { a: 1 } } });
    const big = { values: { s: 'x'.repeat(20_000) } };
    const side = sideOf({ ok: true, value: big }) as { output_preview: string; bytes: number };
    assert.equal(side.output_preview.length, SIDE_MAX_CHARS);
    assert.equal(side.bytes, JSON.stringify(big).length);
    assert.deepEqual(sideOf({ ok: false, cause: 'trap', message: 'm'.repeat(2000) }), { error: { cause: 'trap', message: 'm'.repeat(500) } });
  });
});
