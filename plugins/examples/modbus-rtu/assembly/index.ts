// Modbus RTU with CRC check, both ways: decodes read/write responses of any unit and builds
// read-holding-registers, write-register and write-coil requests for commands.
//   decode 01 03 04 00 EA 01 C5 <crc> -> { device_id: "unit_1", values: { reg_0: 234, reg_1: 453 } }
//   encode { command: "read_holding", params: { unit: 1, address: 0, count: 2 } } -> 01 03 00 00 00 02 C4 0B
import { Reader, Message, Command, decodeWith, encodeWith, error, giveString, metaJson, crc16modbus, log } from "../../../sdk-assemblyscript/assembly";
export { flux_abi_version, alloc, dealloc } from "../../../sdk-assemblyscript/assembly";

function hex4(v: u32): string {
  let s = v.toString(16);
  while (s.length < 4) s = "0" + s;
  return s;
}

function onFrame(r: Reader): string {
  if (r.length < 5) return error("modbus-rtu: frame of " + r.length.toString() + " bytes is too short (unit, function, data, CRC)");
  const got = <u32>r.at(r.length - 2) | (<u32>r.at(r.length - 1) << 8);
  const want = <u32>crc16modbus(r.ptr, r.length - 2);
  if (got != want) return error("modbus-rtu: CRC mismatch: frame says " + hex4(got) + ", computed " + hex4(want));
  const unit = r.u8();
  const fn = r.u8();
  const m = new Message("unit_" + unit.toString());
  if (fn & 0x80) return error("modbus-rtu: exception " + r.u8().toString() + " for function " + (fn & 0x7f).toString());
  if (fn == 3 || fn == 4) {
    const count = r.u8();
    if (count & 1 || <i32>count + 5 != r.length) return error("modbus-rtu: byte count " + count.toString() + " does not match the frame");
    const prefix = fn == 3 ? "reg_" : "input_";
    for (let i: i32 = 0; i < <i32>count / 2; i++) m.int(prefix + i.toString(), r.u16be());
    return m.json();
  }
  if (fn == 6) {
    const address = r.u16be();
    return m.int("register", address).int("value", r.u16be()).json();
  }
  if (fn == 5) {
    const address = r.u16be();
    return m.int("coil", address).bool("on", r.u16be() == 0xff00).json();
  }
  return error("modbus-rtu: function " + fn.toString() + " is not supported");
}

export function decode(ptr: usize, len: i32): i64 {
  return decodeWith(ptr, len, onFrame);
}

function field(c: Command, name: string, max: f64): u32 {
  const v = c.number(name);
  if (v < 0 || v > max || v != Math.floor(v)) throw new Error("params." + name + " must be an integer from 0 to " + max.toString());
  return <u32>v;
}

function request(unit: u32, fn: u32, a: u32, b: u32): Uint8Array {
  const out = new Uint8Array(8);
  out[0] = <u8>unit;
  out[1] = <u8>fn;
  out[2] = <u8>(a >> 8);
  out[3] = <u8>a;
  out[4] = <u8>(b >> 8);
  out[5] = <u8>b;
  const crc = crc16modbus(out.dataStart, 6);
  out[6] = <u8>crc;
  out[7] = <u8>(crc >> 8);
  return out;
}

function onCommand(c: Command): Uint8Array {
  const unit = field(c, "unit", 247);
  if (c.command == "read_holding") return request(unit, 3, field(c, "address", 65535), field(c, "count", 125));
  if (c.command == "read_input") return request(unit, 4, field(c, "address", 65535), field(c, "count", 125));
  if (c.command == "write_register") return request(unit, 6, field(c, "address", 65535), field(c, "value", 65535));
  if (c.command == "write_coil") return request(unit, 5, field(c, "address", 65535), c.bool("on") ? 0xff00 : 0);
  log("unknown command " + c.command);
  throw new Error("unknown command '" + c.command + "' (read_holding, read_input, write_register, write_coil)");
}

export function encode(ptr: usize, len: i32): i64 {
  return encodeWith(ptr, len, onCommand);
}

export function meta(): i64 {
  // Read responses over a TCP gateway: unit, function, byte count, data, CRC (2 bytes not counted).
  return giveString(metaJson("modbus-rtu", "0.1.0", "modbus-rtu", '{"type":"length","offset":2,"bytes":1,"adjust":2}'));
}
