/**
 * How this checkout builds and tests Rust plugins without crates.io: plain cargo when rustup has the
 * wasm32 target, otherwise Debian's rustc-web with its std source (-Zbuild-std) and the crate
 * sources of Debian's librust-*-dev packages as a cargo directory source. plugins/build.ts and the
 * SDK's `cargo test` (test/plugins/examples.test.ts) share it; test/setup/system-packages.sh
 * installs the Debian packages.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PLUGINS_ROOT = path.dirname(fileURLToPath(import.meta.url));
export const DEBIAN_RUST_PACKAGES = 'rustc-web cargo-web rust-web-src lld librust-serde-dev librust-serde-json-dev librust-serde-derive-dev';
const CRATE_SOURCES = ['/usr/share/cargo/registry', '/usr/lib/rustlib/src/rust/library/vendor'];

export function hasRustupWasmTarget(): boolean {
  const r = spawnSync('rustup', ['target', 'list', '--installed'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.split('\n').includes('wasm32-unknown-unknown');
}

export function hasDebianRust(): boolean {
  return fs.existsSync('/usr/bin/cargo') && fs.existsSync('/usr/lib/rustlib/src/rust/library/Cargo.lock') && CRATE_SOURCES.every((d) => fs.existsSync(d));
}

/** One folder of symlinks to Debian's crate sources and std's vendored crates. */
export function debianVendorDir(): string {
  const dir = path.join(PLUGINS_ROOT, 'target', 'debian-vendor');
  fs.mkdirSync(dir, { recursive: true });
  for (const parent of CRATE_SOURCES) {
    if (!fs.existsSync(parent)) throw new Error(`${parent} is missing: apt-get install -y ${DEBIAN_RUST_PACKAGES}`);
    for (const name of fs.readdirSync(parent)) {
      const link = path.join(dir, name);
      if (!fs.existsSync(link)) fs.symlinkSync(path.join(parent, name), link);
    }
  }
  return dir;
}

/** cargo flags that take every crate from Debian's sources, never from the network. */
export function offlineCargoConfig(): string[] {
  const vendor = debianVendorDir();
  return ['--config', `source.crates-io.replace-with="debian"`, '--config', `source.debian.directory="${vendor}"`, '--offline'];
}

/** The cargo that runs host-side tests: rustup's when present, else Debian's. */
export function hostCargo(): string | undefined {
  for (const c of ['cargo', '/usr/bin/cargo']) if (spawnSync(c, ['--version']).status === 0) return c;
  return undefined;
}
