#!/bin/sh
# Plugins (issue 4): installs the toolchains the example plugins need, builds them into
# plugins/dist/, where test/plugins/*.test.ts and `npm start` read them.
# Rust: plain cargo when rustup has wasm32-unknown-unknown, else Debian's offline route (rustc-web,
# -Zbuild-std, crate sources from librust-*-dev); plugins/build.ts picks. AssemblyScript comes from npm.
set -eu
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  if [ ! -x /usr/bin/cargo ] || [ ! -f /usr/lib/rustlib/src/rust/library/Cargo.lock ] || [ ! -d /usr/share/cargo/registry ]; then
    apt-get update
    apt-get install -y rustc-web cargo-web rust-web-src lld librust-serde-dev librust-serde-json-dev librust-serde-derive-dev
  fi
fi
command -v mosquitto_pub >/dev/null || { apt-get update && apt-get install -y mosquitto-clients; }

node_modules/.bin/node plugins/build.ts
# the plugin tests (test/plugins/) run with `npm test` in .ci/run
