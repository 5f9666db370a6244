/**
 * Two versions of a test plugin whose outputs differ on frames known in advance. A frame is five
 * ASCII digits D and the device id; version 1 answers `{"device_id":…,"ts":17500000DDDDD,"values":{"n":17500000DDDDD}}` (a distinct
 * time per D, so every frame is a row of its own once stored). Version 2 answers the same, except
 * `{"device_id":…,"values":{"n":-1}}` when D starts with 9 (different) and a trap when it starts with 8 (failed).
 */
import { wat } from '../plugins/fixtures.ts';

export const BASE_TS = 1_750_000_000_000;
/** Frame D of a device: five digits, then the device id (the plugin answers it as device_id). */
export const frame = (d: number, deviceId: string): Buffer => Buffer.from(String(d).padStart(5, '0') + deviceId);
/** what version 2 does with frame D */
export const v2Outcome = (d: number): 'same' | 'different' | 'failed' => {
  const first = String(d).padStart(5, '0')[0];
  return first === '9' ? 'different' : first === '8' ? 'failed' : 'same';
};

const PIECES = ['{"device_id":"', '","ts":17500000', ',"values":{"n":17500000', '}}', '","values":{"n":-1}}'];

/** Versions 1 and 2 as above; version 3 answers as version 1 but loops forever on frames starting with 0 (cut off at its deadline). */
export function digitsPlugin(version: 1 | 2 | 3): Buffer {
  const esc = (s: string) => s.replace(/"/g, '\\"');
  // piece i lives at 100 * i; $put appends a piece, $in appends input bytes, at the cursor $o
  const piece = (i: number) => `(call $put (i32.const ${100 * i}) (i32.const ${Buffer.byteLength(PIECES[i]!)}))`;
  const id = '(call $put (i32.add (local.get $ptr) (i32.const 5)) (i32.sub (local.get $len) (i32.const 5)))';
  const digits = '(call $put (local.get $ptr) (i32.const 5))';
  const changed = version === 2
    ? `(if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 57)) (then ${piece(0)} ${id} ${piece(4)} (return (call $pack (i32.const 4096) (i32.sub (global.get $o) (i32.const 4096))))))
    (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 56)) (then (unreachable)))`
    : version === 3
      ? '(if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 48)) (then (loop $forever (br $forever))))'
      : '';
  return wat(`(module
  (memory (export "memory") 1)
  ${PIECES.map((p, i) => `(data (i32.const ${100 * i}) "${esc(p)}")`).join('\n  ')}
  (global $o (mut i32) (i32.const 4096))
  (func (export "flux_abi_version") (result i32) (i32.const 1))
  (func (export "alloc") (param $len i32) (result i32) (i32.const 1024))
  (func (export "dealloc") (param $p i32) (param $l i32))
  (func $pack (param $p i32) (param $l i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $l))))
  (func $put (param $from i32) (param $n i32)
    (memory.copy (global.get $o) (local.get $from) (local.get $n))
    (global.set $o (i32.add (global.get $o) (local.get $n))))
  (func (export "decode") (param $ptr i32) (param $len i32) (result i64)
    (global.set $o (i32.const 4096))
    ${changed}
    ${piece(0)} ${id} ${piece(1)} ${digits} ${piece(2)} ${digits} ${piece(3)}
    (call $pack (i32.const 4096) (i32.sub (global.get $o) (i32.const 4096))))
)`);
}
