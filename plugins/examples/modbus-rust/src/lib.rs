//! The seed's Modbus example (docs/architecture.md "The seed") on `flux-plugin-sdk`: a Modbus RTU read-holding-
//! registers response `unit 03 count hi lo …` -> `{ device_id: "sensor_{unit}", values: { temperature: reg / 10 } }`,
//! and the way back: commands become Modbus RTU "write single register" requests (function 06).
use flux_plugin_sdk::{export_plugin, Command, Meta, PluginHandler, StandardMessage};

struct ModbusPlugin;

/// Modbus RTU CRC-16 (polynomial 0xA001, initial 0xFFFF), sent low byte first.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for b in bytes {
        crc ^= *b as u16;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
        }
    }
    crc
}

/// A whole number in [min, max] from `params[name]`, else `default` when given.
fn param(cmd: &Command, name: &str, min: i64, max: i64, default: Option<i64>) -> Result<i64, String> {
    match cmd.params.get(name) {
        None | Some(flux_plugin_sdk::Value::Null) => default.ok_or(format!("params.{name} is required")),
        Some(v) => match v.as_i64() {
            Some(n) if n >= min && n <= max => Ok(n),
            _ => Err(format!("params.{name} must be a whole number from {min} to {max}, got {v}")),
        },
    }
}

/// The slave address: `params.unit`, else the number at the end of the device id (`sensor_1` -> 1).
fn unit_of(cmd: &Command) -> Result<u8, String> {
    let from_id = cmd.device_id.as_deref().and_then(|id| {
        let digits: String = id.chars().rev().take_while(|c| c.is_ascii_digit()).collect::<Vec<_>>().into_iter().rev().collect();
        digits.parse::<i64>().ok()
    });
    Ok(param(cmd, "unit", 1, 247, from_id.filter(|n| (1..=247).contains(n)))? as u8)
}

/// Function 06 request: unit, 06, address, value (big endian), CRC.
fn write_single_register(unit: u8, address: u16, value: u16) -> Vec<u8> {
    let mut frame = vec![unit, 0x06];
    frame.extend_from_slice(&address.to_be_bytes());
    frame.extend_from_slice(&value.to_be_bytes());
    let crc = crc16(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    frame
}

impl PluginHandler for ModbusPlugin {
    fn on_decode(raw: &[u8]) -> StandardMessage {
        // 1. the frame header
        let unit_id = raw[0];
        let _function_code = raw[1];

        // 2. the register, in tenths of a degree
        let temp_raw = u16::from_be_bytes([raw[3], raw[4]]);
        let temp = temp_raw as f64 / 10.0;

        StandardMessage {
            device_id: format!("sensor_{}", unit_id),
            values: [("temperature".to_string(), temp)].into(),
            ts: None,
        }
    }

    // The seed indexes raw[4] unchecked; a short frame is refused here with a reason instead of a panic.
    fn decode(raw: &[u8]) -> Result<Vec<StandardMessage>, String> {
        if raw.len() < 5 {
            return Err(format!("modbus: frame of {} bytes, need at least 5 (unit, function, count, register)", raw.len()));
        }
        if raw[1] & 0x80 != 0 {
            return Err(format!("modbus: exception response, function 0x{:02X} code {}", raw[1] & 0x7f, raw[2]));
        }
        Ok(vec![Self::on_decode(raw)])
    }

    /// `write_register { address, value, unit? }` (value 0..65535, or -32768..-1 as a signed register);
    /// the seed's scene commands `TurnOn { brightness? }` / `TurnOff` write register 0 (100 / 0).
    fn on_encode(cmd: &Command) -> Result<Vec<u8>, String> {
        let (address, value) = match cmd.command.as_str() {
            "write_register" | "write_single_register" => (param(cmd, "address", 0, 65535, None)?, param(cmd, "value", -32768, 65535, None)?),
            "TurnOn" => (0, param(cmd, "brightness", 0, 65535, Some(100))?),
            "TurnOff" => (0, 0),
            other => return Err(format!("unknown command '{other}' (this plugin encodes write_register, TurnOn, TurnOff)")),
        };
        let unit = unit_of(cmd)?;
        Ok(write_single_register(unit, address as u16, value as i16 as u16))
    }

    fn meta() -> Meta {
        Meta {
            name: "modbus".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: "modbus-rtu".into(),
            // Over TCP the seed's frames arrive as 7-byte responses (unit, fc, count=2, reg, CRC).
            framing: Some(flux_plugin_sdk::json!({ "type": "fixed", "size": 7 })),
        }
    }
}

export_plugin!(ModbusPlugin);

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_seed_frame_decodes_to_sensor_1_at_45_3_degrees() {
        let out = flux_plugin_sdk::decode_json::<ModbusPlugin>(&[0x01, 0x03, 0x02, 0x01, 0xC5, 0x00, 0x00]);
        assert_eq!(out, r#"{"device_id":"sensor_1","values":{"temperature":45.3}}"#);
    }
    #[test]
    fn a_short_frame_is_an_error_not_a_panic() {
        assert!(flux_plugin_sdk::decode_json::<ModbusPlugin>(&[1, 3]).contains("need at least 5"));
    }
    #[test]
    fn write_register_is_a_function_06_request_with_its_crc() {
        // The reference frame of the Modbus spec's example: unit 17, register 1 := 3 -> 11 06 0001 0003 9A9B.
        let out = flux_plugin_sdk::encode_bytes::<ModbusPlugin>(br#"{"command":"write_register","params":{"unit":17,"address":1,"value":3}}"#);
        assert_eq!(out, Ok(vec![0x11, 0x06, 0x00, 0x01, 0x00, 0x03, 0x9A, 0x9B]));
    }
    #[test]
    fn the_unit_comes_from_the_device_id_and_the_scene_command_writes_register_0() {
        let out = flux_plugin_sdk::encode_bytes::<ModbusPlugin>(br#"{"command":"TurnOn","params":{"brightness":100},"device_id":"light_switch_01"}"#).unwrap();
        assert_eq!(&out[..6], &[0x01, 0x06, 0x00, 0x00, 0x00, 0x64]);
        assert_eq!(crc16(&out[..6]).to_le_bytes(), [out[6], out[7]]);
    }
    #[test]
    fn bad_commands_are_refused_with_a_reason() {
        assert!(flux_plugin_sdk::encode_bytes::<ModbusPlugin>(br#"{"command":"write_register","params":{"address":1,"value":70000},"device_id":"sensor_1"}"#).unwrap_err().contains("params.value"));
        assert!(flux_plugin_sdk::encode_bytes::<ModbusPlugin>(br#"{"command":"write_register","params":{"address":1,"value":1},"device_id":"boiler"}"#).unwrap_err().contains("params.unit is required"));
        assert!(flux_plugin_sdk::encode_bytes::<ModbusPlugin>(br#"{"command":"reboot"}"#).unwrap_err().contains("unknown command"));
    }
}
