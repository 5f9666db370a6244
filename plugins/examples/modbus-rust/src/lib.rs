//! The seed's Modbus example (seed Part 2 §2.2) on `flux-plugin-sdk`: a Modbus RTU read-holding-
//! registers response `unit 03 count hi lo …` -> `{ device_id: "sensor_{unit}", values: { temperature: reg / 10 } }`.
use flux_plugin_sdk::{export_plugin, Meta, PluginHandler, StandardMessage};

struct ModbusPlugin;

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
}
