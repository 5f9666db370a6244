/** Test plugins written in WAT (compiled with binaryen, which AssemblyScript ships), including the misbehaving ones. */
import binaryen from 'binaryen';

/** WAT text -> module bytes, with every feature on (bulk memory for memory.copy). */
export function wat(text: string): Buffer {
  const mod = binaryen.parseText(text);
  try {
    mod.setFeatures(binaryen.Features.All);
    if (!mod.validate()) throw new Error('invalid WAT module');
    return Buffer.from(mod.emitBinary());
  } finally {
    mod.dispose();
  }
}

const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');

/**
 * An echo plugin: for input digits `123` it answers
 * `{"device_id":"d","values":{"v":<version>,"seq":123}}`. The first input byte selects misbehaviour:
 * L loops forever, T traps, M grows memory until refused then traps, O returns an out-of-bounds
 * pointer, U invalid UTF-8, J invalid JSON, S a wrong shape, E `{ "error": … }`, G logs then answers.
 */
export function echoWat(version: number, opts: { abi?: number; extraImport?: string; initialPages?: number; omit?: string } = {}): string {
  const prefix = `{"device_id":"d","values":{"v":${version},"seq":`;
  const P = Buffer.byteLength(prefix);
  const fn = (name: string, body: string) => (opts.omit === name ? '' : body);
  return `(module
  (import "env" "flux_log" (func $log (param i32 i32)))
  ${opts.extraImport ?? ''}
  (memory (export "memory") ${opts.initialPages ?? 1})
  (data (i32.const 0) "${esc(prefix)}")
  (data (i32.const 512) "}}")
  (data (i32.const 600) "\\ff\\fe")
  (data (i32.const 620) "{not json")
  (data (i32.const 640) "{\\"values\\":{}}")
  (data (i32.const 660) "{\\"error\\":\\"bad checksum\\"}")
  (data (i32.const 700) "hello from the plugin")
  (func (export "flux_abi_version") (result i32) (i32.const ${opts.abi ?? 1}))
  ${fn('alloc', '(func (export "alloc") (param $len i32) (result i32) (i32.const 1024))')}
  (func (export "dealloc") (param $p i32) (param $l i32))
  (func $pack (param $p i32) (param $l i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $l))))
  ${fn('decode', `(func (export "decode") (param $ptr i32) (param $len i32) (result i64)
    (local $c i32)
    (local.set $c (i32.load8_u (local.get $ptr)))
    (if (i32.eq (local.get $c) (i32.const 76)) (then (loop $forever (br $forever))))
    (if (i32.eq (local.get $c) (i32.const 84)) (then (unreachable)))
    (if (i32.eq (local.get $c) (i32.const 77)) (then
      (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 256)) (i32.const -1))))
      (unreachable)))
    (if (i32.eq (local.get $c) (i32.const 79)) (then (return (call $pack (i32.const 0x7fff0000) (i32.const 100)))))
    (if (i32.eq (local.get $c) (i32.const 85)) (then (return (call $pack (i32.const 600) (i32.const 2)))))
    (if (i32.eq (local.get $c) (i32.const 74)) (then (return (call $pack (i32.const 620) (i32.const 9)))))
    (if (i32.eq (local.get $c) (i32.const 83)) (then (return (call $pack (i32.const 640) (i32.const 13)))))
    (if (i32.eq (local.get $c) (i32.const 69)) (then (return (call $pack (i32.const 660) (i32.const 24)))))
    (if (i32.eq (local.get $c) (i32.const 71)) (then
      (call $log (i32.const 700) (i32.const 21))
      (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
      (local.set $len (i32.sub (local.get $len) (i32.const 1)))))
    (memory.copy (i32.const 2048) (i32.const 0) (i32.const ${P}))
    (memory.copy (i32.const ${2048 + P}) (local.get $ptr) (local.get $len))
    (memory.copy (i32.add (i32.const ${2048 + P}) (local.get $len)) (i32.const 512) (i32.const 2))
    (call $pack (i32.const 2048) (i32.add (local.get $len) (i32.const ${P + 2}))))`)}
  (func (export "encode") (param $ptr i32) (param $len i32) (result i64)
    (call $pack (local.get $ptr) (local.get $len)))
)`;
}

export const echo = (version: number, opts?: Parameters<typeof echoWat>[1]) => wat(echoWat(version, opts));
