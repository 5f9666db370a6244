// flux-plugin-sdk for AssemblyScript: the FLUX plugin ABI v1 (docs/plugin-abi.md) wired for you.
//
// A plugin's entry file re-exports the ABI plumbing and defines decode/encode with the helpers:
//
//   export { flux_abi_version, alloc, dealloc } from "../../../sdk-assemblyscript/assembly";  // (memory is exported by asc)
//   import { Reader, Message, decodeWith } from "../../../sdk-assemblyscript/assembly";
//   export function decode(ptr: usize, len: i32): i64 { return decodeWith(ptr, len, onFrame); }
//   function onFrame(r: Reader): string { return new Message("sensor_" + r.u8().toString()).number("t", 1.5).json(); }
//
// Build with `--runtime incremental` (the garbage collector frees what a call allocates).

// ---- the ABI plumbing ----------------------------------------------------------------------

export const ABI_VERSION: i32 = 1;

export function flux_abi_version(): i32 {
  return ABI_VERSION;
}

/** A buffer for the host's input; raw heap memory, outside the garbage collector. */
export function alloc(len: i32): usize {
  return heap.alloc(<usize>(len > 0 ? len : 1));
}

/** Frees an input buffer or an output the host has read. */
export function dealloc(ptr: usize, len: i32): void {
  if (ptr != 0) heap.free(ptr);
}

// @ts-ignore: decorator
@external("env", "flux_log")
declare function flux_log(ptr: usize, len: i32): void;

/** One line in the plugin log (shown by the try-decode API and in error messages). */
export function log(line: string): void {
  const b = String.UTF8.encode(line);
  flux_log(changetype<usize>(b), b.byteLength);
}

/** Copies bytes to a fresh heap buffer and packs `(ptr << 32) | len`, the way decode/encode/meta answer. */
export function giveBytes(src: usize, len: i32): i64 {
  const out = heap.alloc(<usize>(len > 0 ? len : 1));
  memory.copy(out, src, <usize>len);
  return (<i64>out << 32) | <i64>(<u32>len);
}

export function giveString(s: string): i64 {
  const b = String.UTF8.encode(s);
  return giveBytes(changetype<usize>(b), b.byteLength);
}

/** decode's body: runs `fn` on a Reader over the input and answers its JSON. */
export function decodeWith(ptr: usize, len: i32, fn: (r: Reader) => string): i64 {
  return giveString(fn(new Reader(ptr, len)));
}

/** encode's body: parses `{ "command", "params" }` and answers the bytes `fn` returns. Throw to refuse a command. */
export function encodeWith(ptr: usize, len: i32, fn: (c: Command) => Uint8Array): i64 {
  const out = fn(Command.parse(String.UTF8.decodeUnsafe(ptr, <usize>len)));
  return giveBytes(out.dataStart, out.length);
}

// ---- reading frames ------------------------------------------------------------------------

/** Reads a frame front to back; reading past the end throws (the call fails with the reason). */
export class Reader {
  pos: i32 = 0;
  constructor(public ptr: usize, public length: i32) {}

  get remaining(): i32 {
    return this.length - this.pos;
  }
  /** byte `i` of the frame, not moving the position */
  at(i: i32): u8 {
    if (i < 0 || i >= this.length) throw new Error("read past the end of the frame at byte " + i.toString());
    return load<u8>(this.ptr + <usize>i);
  }
  private need(n: i32): usize {
    if (this.pos + n > this.length) throw new Error("frame too short: need " + (this.pos + n).toString() + " bytes, have " + this.length.toString());
    const p = this.ptr + <usize>this.pos;
    this.pos += n;
    return p;
  }
  skip(n: i32): Reader {
    this.need(n);
    return this;
  }
  u8(): u8 {
    return load<u8>(this.need(1));
  }
  i8(): i8 {
    return load<i8>(this.need(1));
  }
  u16be(): u16 {
    return bswap<u16>(load<u16>(this.need(2)));
  }
  u16le(): u16 {
    return load<u16>(this.need(2));
  }
  i16be(): i16 {
    return <i16>bswap<u16>(load<u16>(this.need(2)));
  }
  i16le(): i16 {
    return load<i16>(this.need(2));
  }
  u32be(): u32 {
    return bswap<u32>(load<u32>(this.need(4)));
  }
  u32le(): u32 {
    return load<u32>(this.need(4));
  }
  i32be(): i32 {
    return <i32>bswap<u32>(load<u32>(this.need(4)));
  }
  f32be(): f32 {
    return reinterpret<f32>(bswap<u32>(load<u32>(this.need(4))));
  }
  f32le(): f32 {
    return load<f32>(this.need(4));
  }
  /** the next `n` bytes as a new array */
  bytes(n: i32): Uint8Array {
    const p = this.need(n);
    const out = new Uint8Array(n);
    memory.copy(out.dataStart, p, <usize>n);
    return out;
  }
  /** the whole frame as a new array */
  all(): Uint8Array {
    const out = new Uint8Array(this.length);
    memory.copy(out.dataStart, this.ptr, <usize>this.length);
    return out;
  }
}

// ---- writing JSON --------------------------------------------------------------------------

export function jsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34) out += '\\"';
    else if (c == 92) out += "\\\\";
    else if (c < 32) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

/** JSON text of an f64: integers without ".0", NaN/Infinity (not JSON) as null. */
export function jsonNumber(v: f64): string {
  if (!isFinite(v)) return "null";
  if (v == Math.floor(v) && Math.abs(v) < 9007199254740992) return (<i64>v).toString();
  return v.toString();
}

/** A StandardMessage builder: `new Message("sensor_1").number("temperature", 45.3).json()`. */
export class Message {
  private fields: string = "";
  private tsMs: i64 = -1;
  constructor(public deviceId: string) {}

  number(name: string, value: f64): Message {
    return this.raw(name, jsonNumber(value));
  }
  int(name: string, value: i64): Message {
    return this.raw(name, value.toString());
  }
  bool(name: string, value: bool): Message {
    return this.raw(name, value ? "true" : "false");
  }
  string(name: string, value: string): Message {
    return this.raw(name, jsonString(value));
  }
  ts(ms: i64): Message {
    this.tsMs = ms;
    return this;
  }
  private raw(name: string, json: string): Message {
    this.fields += (this.fields.length ? "," : "") + jsonString(name) + ":" + json;
    return this;
  }
  json(): string {
    return '{"device_id":' + jsonString(this.deviceId) + ',"values":{' + this.fields + "}" + (this.tsMs >= 0 ? ',"ts":' + this.tsMs.toString() : "") + "}";
  }
}

/** Several messages from one frame. */
export function messages(list: Message[]): string {
  let out = "[";
  for (let i = 0; i < list.length; i++) out += (i ? "," : "") + list[i].json();
  return out + "]";
}

/** The frame is refused: the host fails the message with this reason. */
export function error(reason: string): string {
  return '{"error":' + jsonString(reason) + "}";
}

/** meta()'s JSON; `framing` is JSON text (docs/plugin-abi.md "Framing") or "" for none. */
export function metaJson(name: string, version: string, protocol: string, framing: string = ""): string {
  return '{"name":' + jsonString(name) + ',"version":' + jsonString(version) + ',"protocol":' + jsonString(protocol) + (framing.length ? ',"framing":' + framing : "") + "}";
}

// ---- reading commands ----------------------------------------------------------------------

/** A command for encode: its name and its flat params (numbers, strings, booleans). */
export class Command {
  command: string = "";
  /** the device the command is for ("" when the host did not say) */
  deviceId: string = "";
  private names: string[] = [];
  private values: string[] = [];
  private kinds: u8[] = []; // 0 number, 1 string, 2 bool, 3 other

  has(name: string): bool {
    return this.names.indexOf(name) >= 0;
  }
  number(name: string, fallback: f64 = NaN): f64 {
    const i = this.names.indexOf(name);
    if (i < 0 || this.kinds[i] != 0) {
      if (isNaN(fallback)) throw new Error("params." + name + " must be a number");
      return fallback;
    }
    return parseFloat(this.values[i]);
  }
  string(name: string, fallback: string | null = null): string {
    const i = this.names.indexOf(name);
    if (i < 0 || this.kinds[i] != 1) {
      if (fallback === null) throw new Error("params." + name + " must be a string");
      return fallback;
    }
    return this.values[i];
  }
  bool(name: string, fallback: i32 = -1): bool {
    const i = this.names.indexOf(name);
    if (i < 0 || this.kinds[i] != 2) {
      if (fallback < 0) throw new Error("params." + name + " must be true or false");
      return fallback != 0;
    }
    return this.values[i] == "true";
  }

  /** Parses `{ "command": "…", "params": { flat } }`; nested params values are kept as kind "other". */
  static parse(text: string): Command {
    const p = new JsonScanner(text);
    const c = new Command();
    p.expect(123);
    while (!p.eat(125)) {
      const key = p.str();
      p.expect(58);
      if (key == "command") c.command = p.str();
      else if (key == "device_id" && p.peek() == 34) c.deviceId = p.str();
      else if (key == "params") {
        p.expect(123);
        while (!p.eat(125)) {
          const name = p.str();
          p.expect(58);
          c.names.push(name);
          const ch = p.peek();
          if (ch == 34) {
            c.kinds.push(1);
            c.values.push(p.str());
          } else if (ch == 116 || ch == 102) {
            c.kinds.push(2);
            c.values.push(p.word());
          } else if (ch == 45 || (ch >= 48 && ch <= 57)) {
            c.kinds.push(0);
            c.values.push(p.word());
          } else {
            c.kinds.push(3);
            c.values.push("");
            p.skipValue();
          }
          p.eat(44);
        }
      } else p.skipValue();
      p.eat(44);
    }
    if (c.command.length == 0) throw new Error("the command has no \"command\" name");
    return c;
  }
}

class JsonScanner {
  i: i32 = 0;
  constructor(public s: string) {}
  ws(): void {
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c == 32 || c == 9 || c == 10 || c == 13) this.i++;
      else break;
    }
  }
  peek(): i32 {
    this.ws();
    return this.i < this.s.length ? this.s.charCodeAt(this.i) : -1;
  }
  eat(c: i32): bool {
    if (this.peek() == c) {
      this.i++;
      return true;
    }
    return false;
  }
  expect(c: i32): void {
    if (!this.eat(c)) throw new Error("command JSON: expected '" + String.fromCharCode(c) + "' at " + this.i.toString());
  }
  str(): string {
    this.expect(34);
    let out = "";
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i++);
      if (c == 34) return out;
      if (c == 92) {
        const e = this.s.charCodeAt(this.i++);
        if (e == 110) out += "\n";
        else if (e == 116) out += "\t";
        else if (e == 117) {
          out += String.fromCharCode(<i32>parseInt(this.s.substr(this.i, 4), 16));
          this.i += 4;
        } else out += String.fromCharCode(e);
      } else out += String.fromCharCode(c);
    }
    throw new Error("command JSON: unterminated string");
  }
  word(): string {
    this.ws();
    const start = this.i;
    while (this.i < this.s.length) {
      const c = this.s.charCodeAt(this.i);
      if (c == 44 || c == 125 || c == 93 || c == 32 || c == 10 || c == 13 || c == 9) break;
      this.i++;
    }
    return this.s.substring(start, this.i);
  }
  skipValue(): void {
    const c = this.peek();
    if (c == 34) {
      this.str();
      return;
    }
    if (c == 123 || c == 91) {
      let depth = 0;
      while (this.i < this.s.length) {
        const d = this.s.charCodeAt(this.i);
        if (d == 34) {
          this.str();
          continue;
        }
        this.i++;
        if (d == 123 || d == 91) depth++;
        else if (d == 125 || d == 93) {
          depth--;
          if (depth == 0) return;
        }
      }
      throw new Error("command JSON: unterminated value");
    }
    this.word();
  }
}

// ---- checksums -----------------------------------------------------------------------------

/** CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) of `len` bytes at `ptr`. */
export function crc16modbus(ptr: usize, len: i32): u16 {
  let crc: u32 = 0xffff;
  for (let i = 0; i < len; i++) {
    crc ^= <u32>load<u8>(ptr + <usize>i);
    for (let b = 0; b < 8; b++) crc = crc & 1 ? (crc >> 1) ^ 0xa001 : crc >> 1;
  }
  return <u16>crc;
}
