/**
 * `npm run plugins:build [-- --as] [-- --rust]`: builds the example plugins into plugins/dist/
 * (AssemblyScript with asc; Rust with `cargo build --target wasm32-unknown-unknown --release` when
 * rustup has the target, else the offline Debian route of plugins/toolchain.ts), then
 * instantiates each module and decodes a sample frame so a broken build fails here.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEBIAN_RUST_PACKAGES, PLUGINS_ROOT, hasDebianRust, hasRustupWasmTarget, offlineCargoConfig } from './toolchain.ts';

const ROOT = PLUGINS_ROOT;
const DIST = path.join(ROOT, 'dist');
const args = process.argv.slice(2);
const only = args.filter((a) => a === '--as' || a === '--rust');
const want = (k: '--as' | '--rust') => only.length === 0 || only.includes(k);

/** AssemblyScript examples: folder under examples/ → plugin id (the file name in dist/). */
const AS_EXAMPLES: Record<string, string> = { 'modbus-as': 'modbus-as', 'modbus-rtu': 'modbus-rtu' };
/** Rust examples: crate name (its wasm file) → plugin id. */
const RUST_EXAMPLES: Record<string, string> = { modbus: 'modbus' };
const SAMPLES: Record<string, string> = { modbus: '01030201C50000', 'modbus-as': '01030201C50000', 'modbus-rtu': '01030400EA01C51A04' };

function step(msg: string): void {
  process.stderr.write(`plugins:build: ${msg}\n`);
}

async function buildAssemblyScript(): Promise<void> {
  const asc = (await import('assemblyscript/asc')).default;
  for (const [dir, id] of Object.entries(AS_EXAMPLES)) {
    const entry = path.join(ROOT, 'examples', dir, 'assembly', 'index.ts');
    const out = path.join(DIST, `${id}.wasm`);
    const { error, stderr } = await asc.main([entry, '--outFile', out, '--runtime', 'incremental', '--optimizeLevel', '3', '--shrinkLevel', '1']);
    if (error) throw new Error(`asc failed for ${dir}: ${error.message}\n${stderr.toString()}`);
    step(`${path.relative(process.cwd(), out)} (${fs.statSync(out).size} bytes, AssemblyScript)`);
  }
}

function buildRust(): void {
  let cmd: string;
  let cargoArgs: string[];
  let env: NodeJS.ProcessEnv = { ...process.env };
  if (hasRustupWasmTarget()) {
    step('Rust: rustup has wasm32-unknown-unknown; plain cargo build');
    cmd = 'cargo';
    cargoArgs = ['build', '--release', '--target', 'wasm32-unknown-unknown'];
  } else if (hasDebianRust()) {
    step('Rust: no rustup wasm target; offline Debian route (rustc-web, -Zbuild-std)');
    cmd = '/usr/bin/cargo';
    cargoArgs = [
      ...offlineCargoConfig(),
      '--config', `target.wasm32-unknown-unknown.linker="wasm-ld"`,
      'build', '--release', '--target', 'wasm32-unknown-unknown', '-Zbuild-std=std,panic_abort',
    ];
    // Debian's cargo must drive Debian's rustc (the one whose std source is installed), not rustup's.
    env = { ...env, RUSTC: '/usr/bin/rustc', RUSTC_BOOTSTRAP: '1' };
  } else {
    throw new Error(`no Rust toolchain for wasm32: \`rustup target add wasm32-unknown-unknown\`, or apt-get install -y ${DEBIAN_RUST_PACKAGES}`);
  }
  // Panic messages embed source paths: map the checkout (and cargo's home) to fixed names so the
  // same sources build the same bytes in any folder (CI clones elsewhere).
  const remap = [`--remap-path-prefix=${ROOT}=/flux/plugins`, `--remap-path-prefix=${path.join(os.homedir(), '.cargo')}=/cargo`];
  env.RUSTFLAGS = [process.env.RUSTFLAGS, ...remap].filter(Boolean).join(' ');
  execFileSync(cmd, cargoArgs, { cwd: ROOT, env, stdio: 'inherit' });
  for (const [crate, id] of Object.entries(RUST_EXAMPLES)) {
    const built = path.join(ROOT, 'target', 'wasm32-unknown-unknown', 'release', `${crate}.wasm`);
    const out = path.join(DIST, `${id}.wasm`);
    fs.copyFileSync(built, out);
    step(`${path.relative(process.cwd(), out)} (${fs.statSync(out).size} bytes, Rust)`);
  }
}

/** Instantiates a built module with the two allowed imports and decodes its sample frame. */
function smoke(id: string): string {
  const file = path.join(DIST, `${id}.wasm`);
  const module = new WebAssembly.Module(fs.readFileSync(file));
  const inst = new WebAssembly.Instance(module, {
    env: {
      flux_log: () => {},
      abort: () => {
        throw new Error(`${id}: abort`);
      },
    },
  });
  const e = inst.exports as Record<string, any>;
  const mem = e.memory as WebAssembly.Memory;
  if (e.flux_abi_version() !== 1) throw new Error(`${id}: flux_abi_version() is not 1`);
  const frame = Buffer.from(SAMPLES[id]!, 'hex');
  const p = e.alloc(frame.length) >>> 0;
  new Uint8Array(mem.buffer, p, frame.length).set(frame);
  const r = BigInt.asUintN(64, e.decode(p, frame.length));
  const text = Buffer.from(mem.buffer, Number(r >> 32n), Number(r & 0xffffffffn)).toString('utf8');
  JSON.parse(text);
  return text;
}

fs.mkdirSync(DIST, { recursive: true });
try {
  if (want('--as')) await buildAssemblyScript();
  if (want('--rust')) buildRust();
  for (const id of [...(want('--as') ? Object.values(AS_EXAMPLES) : []), ...(want('--rust') ? Object.values(RUST_EXAMPLES) : [])]) {
    step(`${id}: ${SAMPLES[id]} -> ${smoke(id)}`);
  }
} catch (err) {
  process.stderr.write(`plugins:build: ${(err as Error).message}\n`);
  process.exit(1);
}
