#!/bin/sh
# Builds the example plugins into
# plugins/dist/ (committed), where test/plugins/*.test.ts and `npm start` read them.
# Rust: plain cargo when rustup has wasm32-unknown-unknown, else Debian's offline route (rustc-web,
# -Zbuild-std, crate sources from librust-*-dev); plugins/build.ts picks. AssemblyScript comes from npm.
set -eu
cd "$(dirname "$0")/.."

# Debian's Rust route and its crate sources come from test/setup/system-packages.sh (run before this).

node_modules/.bin/node plugins/build.ts
# the plugin tests (test/plugins/) run with `npm test` in .ci/run
