// A plugin exercising the SDK for test/plugins/sdk-assemblyscript.test.ts: the first byte picks a case.
import { Reader, Message, Command, decodeWith, encodeWith, error, messages, log, jsonNumber } from "../../assembly";
export { flux_abi_version, alloc, dealloc } from "../../assembly";

function onFrame(r: Reader): string {
  const which = r.u8();
  if (which == 1) return new Message("le\"ft\\\n").int("u16be", r.u16be()).int("u16le", r.u16le()).int("i16be", r.i16be()).int("u32be", r.u32be()).json();
  if (which == 2) return new Message("f").number("f32be", <f64>r.f32be()).number("half", 0.5).number("whole", 3.0).string("s", "é\"").bool("b", true).ts(1700000000000).json();
  if (which == 3) return messages([new Message("a").int("n", 1), new Message("b").int("n", 2)]);
  if (which == 4) return new Message("x").int("past", r.skip(100).u8()).json();
  if (which == 5) {
    log("about to refuse");
    return error("refused \"politely\"");
  }
  return "{\"device_id\":\"nan\",\"values\":{\"v\":" + jsonNumber(NaN) + "}}";
}

export function decode(ptr: usize, len: i32): i64 {
  return decodeWith(ptr, len, onFrame);
}

function onCommand(c: Command): Uint8Array {
  const out = new Uint8Array(4);
  out[0] = <u8>c.number("n");
  out[1] = c.bool("on") ? 1 : 0;
  out[2] = <u8>c.string("name").length;
  out[3] = c.has("nested") ? 1 : 0;
  if (c.command != "go") throw new Error("unknown command " + c.command);
  return out;
}

export function encode(ptr: usize, len: i32): i64 {
  return encodeWith(ptr, len, onCommand);
}
