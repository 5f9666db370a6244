// The seed's Modbus example (seed Part 2 §2.2) in AssemblyScript: a read-holding-registers
// response `unit 03 count hi lo …` -> { device_id: "sensor_{unit}", values: { temperature: reg / 10 } }.
import { Reader, Message, decodeWith, error, giveString, metaJson } from "../../../sdk-assemblyscript/assembly";
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

export function meta(): i64 {
  return giveString(metaJson("modbus-as", "0.1.0", "modbus-rtu", '{"type":"fixed","size":7}'));
}
