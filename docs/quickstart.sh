#!/usr/bin/env bash
# FLUX quickstart: a Modbus sensor, the seed's high-temperature rule, stored telemetry, an alarm,
# the live feed, the trace of one message and a command back to the device. Run it beside a running `npm start`:
#   bash docs/quickstart.sh
# (FLUX_API, FLUX_MQTT_PORT and FLUX_ADMIN_TOKEN override the defaults below.)
set -euo pipefail
API=${FLUX_API:-http://localhost:1880/api}
MQTT_PORT=${FLUX_MQTT_PORT:-1883}
TOKEN=${FLUX_ADMIN_TOKEN:-$(cat "${FLUX_DATA_DIR:-data}/admin-token")}
NODE=${NODE:-node_modules/.bin/node}   # Node 24 from `npm ci` (has a WebSocket client built in)
api() { curl -sS -f -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; echo; }

echo "# 1. a product decoded by the Modbus plugin (plugins/dist/modbus.wasm)"
api -X POST "$API/products" -d '{"key":"boiler","name":"Boiler sensor","protocol_plugin_id":"modbus",
  "metadata":{"properties":[{"id":"temperature","type":"float","unit":"°C"}]}}'

echo "# 2. a device: its secret is in this answer only"
DEVICE=$(api -X POST "$API/devices" -d '{"id":"sensor_1","product_id":"boiler","name":"Boiler 1"}')
echo "$DEVICE"
SECRET=$(echo "$DEVICE" | "$NODE" -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).secret')

echo "# 3. the seed's high-temperature rule (Rhai syntax, runs as written), raising a critical alarm"
RULE=$(mktemp)
"$NODE" -e 'process.stdout.write(JSON.stringify({ name: "high temperature", enabled: true, action_type: "alarm",
  action_config: { level: "critical", message: "boiler too hot" },
  trigger_script: "let temp = msg.values.temperature;\n\nif temp > 45.0 {\n    print(\"Warning: High temperature detected!\");\n    return true;\n} else {\n    return false;\n}\n" }))' > "$RULE"
api -X POST "$API/rules" --data-binary @"$RULE"

echo "# 4. the live feed (telemetry, status, alarms of sensor_1), in the background"
WS_URL="${API/http/ws}/ws?device=sensor_1&access_token=$TOKEN"
FEED_OUT=$(mktemp)
"$NODE" -e 'const ws = new WebSocket(process.argv[1]); ws.onopen = () => console.log("feed: open");
  const seen = new Set(); ws.onmessage = (e) => { console.log("feed:", e.data); seen.add(JSON.parse(e.data).type);
    if (seen.has("telemetry") && seen.has("alarm")) process.exit(0); }; setTimeout(() => process.exit(0), 15000);' \
  "$WS_URL" | tee "$FEED_OUT" &
FEED=$!
for _ in $(seq 100); do grep -q "feed: open" "$FEED_OUT" && break; sleep 0.1; done   # connected before we publish

echo "# 5. the seed's Modbus frame: unit 1 → sensor_1, register 0x01C5 = 453 → 45.3 °C"
printf '\x01\x03\x02\x01\xc5\x00\x00' | mosquitto_pub -p "$MQTT_PORT" -i sensor_1 -u sensor_1 -P "$SECRET" -q 1 \
  -t /boiler/sensor_1/properties/report -s
wait $FEED   # the feed client stops once it has seen the telemetry and the alarm (or after 15 s)

echo "# 6. stored telemetry"
api "$API/devices/sensor_1/latest"
echo "# 7. the alarm it raised"
api "$API/alarms?device_id=sensor_1"
echo "# 8. what happened to that message, stage by stage"
api "$API/devices/sensor_1/trace?last=1"
echo "# 9. a command back to the device: the plugin encodes write_register as a Modbus write-single-register frame"
CMD_OUT=$(mktemp)
stdbuf -oL mosquitto_sub -p "$MQTT_PORT" -i sensor_1/commands -u sensor_1 -P "$SECRET" -q 1 -t /boiler/sensor_1/command \
  -C 1 -W 30 -d -F 'mosquitto_sub received on %t: %x' > "$CMD_OUT" &   # stdbuf: each line as it comes
SUB=$!
for _ in $(seq 100); do grep -q SUBACK "$CMD_OUT" && break; sleep 0.1; done   # subscribed before we send
api -X POST "$API/devices/sensor_1/commands" -d '{"command":"write_register","params":{"address":1,"value":500}}'
wait $SUB
grep '^mosquitto_sub received' "$CMD_OUT"   # unit 1, function 06, register 0x0001 := 0x01F4 (500), CRC
