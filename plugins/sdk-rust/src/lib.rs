//! `flux-plugin-sdk`: write FLUX IOT protocol plugins in Rust.
//!
//! A plugin is a core WebAssembly module following the FLUX plugin ABI v1 (docs/plugin-abi.md):
//! implement [`PluginHandler`] on a type and call [`export_plugin!`] once; the macro generates the
//! exports (`flux_abi_version`, `alloc`, `dealloc`, `decode`, `encode`, `meta`) and does the memory
//! and JSON work. The seed's Modbus example compiles unchanged:
//!
//! ```ignore
//! use flux_plugin_sdk::{export_plugin, PluginHandler, StandardMessage};
//! struct ModbusPlugin;
//! impl PluginHandler for ModbusPlugin {
//!     fn on_decode(raw: &[u8]) -> StandardMessage {
//!         let temp = u16::from_be_bytes([raw[3], raw[4]]) as f64 / 10.0;
//!         StandardMessage { device_id: format!("sensor_{}", raw[0]), values: [("temperature".to_string(), temp)].into(), ts: None }
//!     }
//! }
//! export_plugin!(ModbusPlugin);
//! ```

use std::collections::BTreeMap;

pub use serde;
pub use serde_json;
pub use serde_json::{json, Value};
use serde::{Deserialize, Serialize};

/// The ABI version this SDK implements (`flux_abi_version()` returns it).
pub const ABI_VERSION: i32 = 1;

/// Values of a message: name -> number, string or boolean.
///
/// Built from arrays of pairs, so `[("temperature".to_string(), 45.3)].into()` works as in the seed
/// (any value convertible to a JSON value: f64, i64, u32, bool, &str, String…).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Values(pub BTreeMap<String, Value>);

impl Values {
    pub fn new() -> Self {
        Values(BTreeMap::new())
    }
    /// Adds or replaces one value; returns self for chaining.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(name.into(), value.into());
    }
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<Value>, const N: usize> From<[(K, V); N]> for Values {
    fn from(pairs: [(K, V); N]) -> Self {
        Values(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Values {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Values(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// What `decode` produces (docs/plugin-abi.md "`decode` output"): a device id, its values and an optional time in ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StandardMessage {
    pub device_id: String,
    pub values: Values,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

/// A command for `encode`: `{ "command": "…", "params": { … }, "device_id": "…" }` (the host also
/// sends `id`, `ts` and, for a gateway's child, `gateway_id`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub command: String,
    #[serde(default)]
    pub params: Value,
    /// the device the command is for
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

/// What `meta` reports: `{ name, version, protocol, framing }`. `framing` tells the TCP ingress
/// how to split a byte stream into frames (docs/plugin-abi.md, "Framing").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub name: String,
    pub version: String,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framing: Option<Value>,
}

/// A protocol plugin. Implement `on_decode` (the seed's shape) or, when a frame can be invalid or
/// carry several messages, `decode`; `on_encode` and `meta` are optional.
pub trait PluginHandler {
    /// Bytes of one frame -> one message. A panic here fails only this frame (the host reports
    /// the panic message); prefer `decode` to report bad frames as errors.
    fn on_decode(_raw: &[u8]) -> StandardMessage {
        panic!("this plugin implements neither on_decode nor decode")
    }
    /// Bytes of one frame -> messages, or an error message for a frame the plugin refuses.
    fn decode(raw: &[u8]) -> Result<Vec<StandardMessage>, String> {
        Ok(vec![Self::on_decode(raw)])
    }
    /// A command -> the bytes to send to the device.
    fn on_encode(command: &Command) -> Result<Vec<u8>, String> {
        Err(format!("this plugin cannot encode commands (got '{}')", command.command))
    }
    fn meta() -> Meta {
        Meta { name: String::new(), version: String::new(), protocol: String::new(), framing: None }
    }
}

/// Writes one line to the plugin's log (the host shows it in `/api/plugins/{id}/decode` answers
/// and in its own log at debug level).
pub fn log(line: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        #[link(wasm_import_module = "env")]
        extern "C" {
            fn flux_log(ptr: *const u8, len: usize);
        }
        unsafe { flux_log(line.as_ptr(), line.len()) }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        TEST_LOG.with(|l| l.borrow_mut().push(line.to_string()));
    }
}

#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    /// Off wasm (unit tests), log lines are kept here so tests can read them.
    pub static TEST_LOG: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The JSON `decode` answers for a handler's result: one object, an array, or `{ "error": … }`.
pub fn decode_json<H: PluginHandler>(raw: &[u8]) -> String {
    let out = match H::decode(raw) {
        Ok(mut msgs) if msgs.len() == 1 => serde_json::to_string(&msgs.pop().unwrap()),
        Ok(msgs) => serde_json::to_string(&msgs),
        Err(e) => serde_json::to_string(&serde_json::json!({ "error": e })),
    };
    out.unwrap_or_else(|e| format!("{{\"error\":\"cannot serialise the message: {}\"}}", e))
}

/// The bytes `encode` answers for a JSON command. `encode`'s output is raw bytes and cannot carry
/// an error field, so the macro logs an `Err` and traps; the host fails that command with the log.
pub fn encode_bytes<H: PluginHandler>(input: &[u8]) -> Result<Vec<u8>, String> {
    let cmd: Command = serde_json::from_slice(input).map_err(|e| format!("the command is not valid JSON: {e}"))?;
    H::on_encode(&cmd)
}

pub fn meta_json<H: PluginHandler>() -> String {
    serde_json::to_string(&H::meta()).unwrap_or_else(|_| "{}".to_string())
}

/// Memory helpers the generated exports use. Buffers are boxed slices, so `dealloc(ptr, len)`
/// knows the exact layout without a header.
#[doc(hidden)]
pub mod abi {
    pub fn alloc(len: usize) -> *mut u8 {
        let b: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        Box::into_raw(b) as *mut u8
    }
    /// # Safety
    /// `ptr`/`len` must come from `alloc` or from an output of this module, freed once.
    pub unsafe fn dealloc(ptr: *mut u8, len: usize) {
        if ptr.is_null() {
            return;
        }
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) });
    }
    /// Leaks `bytes` to the host and packs `(ptr << 32) | len` as the ABI returns it.
    pub fn give(bytes: Vec<u8>) -> i64 {
        let len = bytes.len();
        let ptr = Box::into_raw(bytes.into_boxed_slice()) as *mut u8 as usize;
        (((ptr as u64) << 32) | (len as u64 & 0xffff_ffff)) as i64
    }
    /// # Safety
    /// `ptr`/`len` must describe memory the host wrote (from `alloc`).
    pub unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
        if len == 0 {
            return &[];
        }
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
    /// Once per instance: panics are written to the plugin log before the trap, so the host's error
    /// says why the plugin stopped instead of only "unreachable".
    pub fn install_panic_hook() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| std::panic::set_hook(Box::new(|info| super::log(&format!("panic: {info}")))));
    }
}

/// Generates the ABI exports for a [`PluginHandler`] type.
#[macro_export]
macro_rules! export_plugin {
    ($handler:ty) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn flux_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn alloc(len: usize) -> *mut u8 {
            $crate::abi::alloc(len)
        }

        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn dealloc(ptr: *mut u8, len: usize) {
            unsafe { $crate::abi::dealloc(ptr, len) }
        }

        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn decode(ptr: *const u8, len: usize) -> i64 {
            $crate::abi::install_panic_hook();
            let raw = unsafe { $crate::abi::input(ptr, len) };
            $crate::abi::give($crate::decode_json::<$handler>(raw).into_bytes())
        }

        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn encode(ptr: *const u8, len: usize) -> i64 {
            $crate::abi::install_panic_hook();
            let input = unsafe { $crate::abi::input(ptr, len) };
            match $crate::encode_bytes::<$handler>(input) {
                Ok(bytes) => $crate::abi::give(bytes),
                // encode answers raw bytes, so an error cannot travel in the output: log it and
                // trap, and the host fails this command with the logged reason.
                Err(e) => panic!("encode: {}", e),
            }
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn meta() -> i64 {
            $crate::abi::give($crate::meta_json::<$handler>().into_bytes())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Seed;
    impl PluginHandler for Seed {
        fn on_decode(raw: &[u8]) -> StandardMessage {
            let temp = u16::from_be_bytes([raw[3], raw[4]]) as f64 / 10.0;
            StandardMessage { device_id: format!("sensor_{}", raw[0]), values: [("temperature".to_string(), temp)].into(), ts: None }
        }
    }

    struct Picky;
    impl PluginHandler for Picky {
        fn decode(raw: &[u8]) -> Result<Vec<StandardMessage>, String> {
            match raw.len() {
                0 => Err("empty frame".into()),
                n => Ok((0..n).map(|i| StandardMessage { device_id: format!("d{i}"), values: Values::new().with("on", raw[i] != 0), ts: Some(1) }).collect()),
            }
        }
        fn on_encode(cmd: &Command) -> Result<Vec<u8>, String> {
            match cmd.command.as_str() {
                "set" => Ok(vec![cmd.params["value"].as_u64().ok_or("params.value must be a number")? as u8]),
                other => Err(format!("unknown command '{other}'")),
            }
        }
    }

    #[test]
    fn the_seed_handler_answers_one_standard_message_as_json() {
        let out = decode_json::<Seed>(&[0x01, 0x03, 0x02, 0x01, 0xC5, 0x00, 0x00]);
        assert_eq!(out, r#"{"device_id":"sensor_1","values":{"temperature":45.3}}"#);
    }

    #[test]
    fn several_messages_become_an_array_and_errors_become_an_error_object() {
        assert_eq!(decode_json::<Picky>(&[1, 0]), r#"[{"device_id":"d0","values":{"on":true},"ts":1},{"device_id":"d1","values":{"on":false},"ts":1}]"#);
        assert_eq!(decode_json::<Picky>(&[]), r#"{"error":"empty frame"}"#);
    }

    #[test]
    fn encode_parses_the_command_json_and_reports_bad_input() {
        assert_eq!(encode_bytes::<Picky>(br#"{"command":"set","params":{"value":7}}"#), Ok(vec![7]));
        assert!(encode_bytes::<Picky>(b"{nope").unwrap_err().contains("not valid JSON"));
        assert_eq!(encode_bytes::<Seed>(br#"{"command":"x"}"#).unwrap_err(), "this plugin cannot encode commands (got 'x')");
    }

    #[test]
    fn values_accept_numbers_strings_and_booleans() {
        let v: Values = [("a", Value::from(1.5)), ("b", Value::from("x")), ("c", Value::from(true))].into();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"a":1.5,"b":"x","c":true}"#);
    }

    #[test]
    fn buffers_round_trip_through_alloc_give_and_dealloc() {
        let p = abi::alloc(3);
        unsafe { abi::dealloc(p, 3) };
        // On a 64-bit test host the pointer does not fit 32 bits; only the length half is checked.
        let packed = abi::give(vec![1, 2, 3, 4]);
        assert_eq!(packed as u64 & 0xffff_ffff, 4);
    }

    #[test]
    fn log_lines_are_collected_off_wasm() {
        log("hello");
        TEST_LOG.with(|l| assert_eq!(l.borrow().last().map(String::as_str), Some("hello")));
    }
}
