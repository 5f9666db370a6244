// The seed's Modbus example (docs/architecture.md "The seed") in AssemblyScript: a read-holding-registers
// response `unit 03 count hi lo …` -> { device_id: "sensor_{unit}", values: { temperature: reg / 10 } },
// and commands as Modbus RTU "write single register" requests (function 06), like the Rust example:
//   { command: "write_register", params: { address, value, unit? } } (unit: else the device id's number)
//   { command: "TurnOn", params: { brightness? } } / { command: "TurnOff" }: register 0 := brightness (100) / 0
import { Reader, Message, Command, decodeWith, encodeWith, error, giveString, metaJson, crc16modbus } from "../../../sdk-assemblyscript/assembly";
export { flux_abi_version, alloc, dealloc } from "../../../sdk-assemblyscript/assembly";

function onFrame(r: Reader): string {
  if (r.length < 5) return error("modbus: frame of " + r.length.toString() + " bytes, need at least 5 (unit, function, count, register)");
  const unit = r.u8();
  const fn = r.u8();
  if (fn & 0x80) return error("modbus: exception response, function " + (fn & 0x7f).toString() + " code " + r.u8().toString());
  r.skip(1); // byte count
  const temp = <f64>r.u16be() / 10.0;
  return new Message("sensor_" + unit.toString()).number("temperature", temp).json();
}

export function decode(ptr: usize, len: i32): i64 {
  return decodeWith(ptr, len, onFrame);
}

/** A whole number in [min, max] from params[name], else `fallback` when it is not NaN. */
function param(c: Command, name: string, min: f64, max: f64, fallback: f64 = NaN): i32 {
  if (!c.has(name)) {
    if (isNaN(fallback)) throw new Error("params." + name + " is required");
    return <i32>fallback;
  }
  const v = c.number(name);
  if (v < min || v > max || v != Math.floor(v)) throw new Error("params." + name + " must be a whole number from " + min.toString() + " to " + max.toString());
  return <i32>v;
}

/** The number at the end of the device id (`sensor_1` -> 1), or NaN. */
function unitFromId(id: string): f64 {
  let i = id.length;
  while (i > 0 && id.charCodeAt(i - 1) >= 48 && id.charCodeAt(i - 1) <= 57) i--;
  if (i == id.length) return NaN;
  const n = parseInt(id.substring(i), 10);
  return n >= 1 && n <= 247 ? n : NaN;
}

function writeSingleRegister(unit: i32, address: i32, value: i32): Uint8Array {
  const out = new Uint8Array(8);
  out[0] = <u8>unit;
  out[1] = 6;
  out[2] = <u8>(address >> 8);
  out[3] = <u8>address;
  out[4] = <u8>(value >> 8);
  out[5] = <u8>value;
  const crc = crc16modbus(out.dataStart, 6);
  out[6] = <u8>crc;
  out[7] = <u8>(crc >> 8);
  return out;
}

function onCommand(c: Command): Uint8Array {
  let address = 0;
  let value = 0;
  if (c.command == "write_register" || c.command == "write_single_register") {
    address = param(c, "address", 0, 65535);
    value = param(c, "value", -32768, 65535) & 0xffff;
  } else if (c.command == "TurnOn") value = param(c, "brightness", 0, 65535, 100);
  else if (c.command != "TurnOff") throw new Error("unknown command '" + c.command + "' (this plugin encodes write_register, TurnOn, TurnOff)");
  return writeSingleRegister(param(c, "unit", 1, 247, unitFromId(c.deviceId)), address, value);
}

export function encode(ptr: usize, len: i32): i64 {
  return encodeWith(ptr, len, onCommand);
}

export function meta(): i64 {
  return giveString(metaJson("modbus-as", "0.1.0", "modbus-rtu", '{"type":"fixed","size":7}'));
}
