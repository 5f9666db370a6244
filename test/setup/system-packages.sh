#!/usr/bin/env bash
# The Debian packages the test suite drives as real parts (run by `npm test` through `pretest`, and by
# .ci/run). Installs only what is missing; a no-op in ~0.1 s once everything is there. Add a package
# here, with the reason, when a test starts to need it: this list is the one place that names them.
set -euo pipefail

packages=(
  mosquitto-clients   # mosquitto_pub / mosquitto_sub: an independent MQTT client for the broker tests
  redis-server        # test/cluster starts Redis servers of its own (never the shared one on 6379)
  haproxy             # test/cluster checks docker/haproxy.cfg with `haproxy -c` (Docker does not run here)
  openssl             # the MQTTS test makes a self-signed certificate
  chromium            # the editor and console tests (playwright-core drives /usr/bin/chromium)
  fonts-wqy-microhei  # CJK glyphs for the Chinese console screenshots
  # camera streams (test/stream): real ffmpeg, and a real RTSP camera (GStreamer's RTSP server with
  # x264, run by test/stream/camera.py under /usr/bin/python3)
  ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 python3-gst-1.0
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
  # Rust plugins offline (plugins/toolchain.ts): Debian's rustc with the std source for
  # -Zbuild-std, wasm-ld, and the crate sources the SDK needs (no crates.io here)
  rustc-web cargo-web rust-web-src lld librust-serde-dev librust-serde-json-dev librust-serde-derive-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "test setup: installing Debian packages the tests use: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "test setup: not root; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
