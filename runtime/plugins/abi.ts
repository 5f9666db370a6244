/**
 * The plugin ABI v1 (docs/plugin-abi.md): static checks of a module's
 * bytes, imports and exports, and the memory cap written into the module itself (docs/plugin-abi.md "Limits and failures"), so a plugin
 * that grows past it sees `memory.grow` fail inside its own code instead of exhausting the host.
 */

export const ABI_VERSION = 1;
export const WASM_PAGE = 65_536;
export const ALLOWED_IMPORTS = new Set(['env.flux_log', 'env.abort']);
export const REQUIRED_EXPORTS: Record<string, 'function' | 'memory'> = { memory: 'memory', flux_abi_version: 'function', alloc: 'function', decode: 'function' };
export const OPTIONAL_EXPORTS: Record<string, 'function'> = { dealloc: 'function', encode: 'function', meta: 'function' };

/** Why a module was refused; the API answers 400 with `code` and this message. */
export class PluginRejected extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'PluginRejected';
    this.code = code;
  }
}

export interface CheckedModule {
  module: WebAssembly.Module;
  /** the bytes as compiled: the upload with its memory maximum set to the cap */
  bytes: Uint8Array;
  memory: { initialPages: number; maxPages: number };
  exports: string[];
}

function readU32(buf: Uint8Array, pos: number): [value: number, next: number] {
  let result = 0;
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new PluginRejected('invalid_wasm', 'truncated module (a LEB128 number runs past the end)');
    const b = buf[pos++]!;
    result += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7;
    if (shift > 35) throw new PluginRejected('invalid_wasm', 'malformed LEB128 number');
  }
}

function writeU32(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

const mib = (bytes: number) => `${Math.round((bytes / 2 ** 20) * 10) / 10} MiB`;

/**
 * Finds the memory section and rewrites its limits so the maximum is at most `capPages`.
 * Refuses a module whose initial memory is already over the cap, a shared or 64-bit memory.
 */
export function capMemory(bytes: Uint8Array, capPages: number): { bytes: Uint8Array; initialPages: number; maxPages: number } {
  let pos = 8;
  while (pos < bytes.length) {
    const id = bytes[pos]!;
    const [size, body] = readU32(bytes, pos + 1);
    const end = body + size;
    if (end > bytes.length) throw new PluginRejected('invalid_wasm', `truncated module (section ${id} runs past the end)`);
    if (id === 5) {
      const [count, afterCount] = readU32(bytes, body);
      let p = afterCount;
      if (count === 0) break;
      if (count > 1) throw new PluginRejected('bad_memory', `the module defines ${count} memories; the ABI has exactly one`);
      const flags = bytes[p++]!;
      if (flags & 0x02) throw new PluginRejected('bad_memory', 'shared memory is not allowed');
      if (flags & 0x04) throw new PluginRejected('bad_memory', '64-bit memory is not allowed');
      const [initial, afterInitial] = readU32(bytes, p);
      p = afterInitial;
      let declaredMax: number | undefined;
      if (flags & 0x01) [declaredMax, p] = readU32(bytes, p);
      if (initial > capPages) {
        throw new PluginRejected('memory_over_cap', `the module declares ${mib(initial * WASM_PAGE)} of initial memory, over the ${mib(capPages * WASM_PAGE)} cap`);
      }
      const maxPages = Math.min(declaredMax ?? capPages, capPages);
      const limits = [0x01, ...writeU32(initial), ...writeU32(maxPages)];
      const section = [...writeU32(1), ...limits];
      const rest = bytes.subarray(p, end);
      const head = bytes.subarray(0, pos);
      const tail = bytes.subarray(end);
      const payload = new Uint8Array(section.length + rest.length);
      payload.set(section, 0);
      payload.set(rest, section.length);
      const sizeBytes = writeU32(payload.length);
      const out = new Uint8Array(head.length + 1 + sizeBytes.length + payload.length + tail.length);
      let o = 0;
      out.set(head, o);
      o += head.length;
      out[o++] = 5;
      out.set(sizeBytes, o);
      o += sizeBytes.length;
      out.set(payload, o);
      o += payload.length;
      out.set(tail, o);
      return { bytes: out, initialPages: initial, maxPages };
    }
    pos = end;
  }
  throw new PluginRejected('missing_export', "the module defines no memory (the ABI needs an exported 'memory')");
}

export interface CheckOptions {
  maxBytes: number;
  memoryCapBytes: number;
}

/** Static checks and compilation (off the main thread: `WebAssembly.compile`). Instantiation happens only in a worker. */
export async function checkModule(input: Uint8Array, opts: CheckOptions): Promise<CheckedModule> {
  if (input.length > opts.maxBytes) throw new PluginRejected('too_large', `the module is ${mib(input.length)} (${input.length} bytes), over the ${mib(opts.maxBytes)} limit`);
  if (input.length < 8 || input[0] !== 0 || input[1] !== 0x61 || input[2] !== 0x73 || input[3] !== 0x6d) {
    throw new PluginRejected('not_wasm', 'not a WebAssembly module (the bytes do not start with \\0asm)');
  }
  if (input[4] !== 1 || input[5] !== 0 || input[6] !== 0 || input[7] !== 0) {
    throw new PluginRejected('not_wasm', 'not a core WebAssembly module of binary version 1 (a component or an unknown version)');
  }
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(input as Uint8Array<ArrayBuffer>);
  } catch (err) {
    throw new PluginRejected('invalid_wasm', `the module does not compile: ${(err as Error).message}`);
  }
  for (const imp of WebAssembly.Module.imports(module)) {
    const name = `${imp.module}.${imp.name}`;
    if (!ALLOWED_IMPORTS.has(name) || imp.kind !== 'function') {
      throw new PluginRejected('forbidden_import', `forbidden import '${name}' (${imp.kind}); plugins may import only the functions env.flux_log and env.abort (no WASI)`);
    }
  }
  const exports = WebAssembly.Module.exports(module);
  const kinds = new Map(exports.map((e) => [e.name, e.kind]));
  for (const [name, kind] of Object.entries(REQUIRED_EXPORTS)) {
    if (!kinds.has(name)) throw new PluginRejected('missing_export', `missing export '${name}' (${kind}); the ABI requires memory, flux_abi_version, alloc and decode`);
    if (kinds.get(name) !== kind) throw new PluginRejected('missing_export', `export '${name}' is a ${kinds.get(name)}, the ABI needs a ${kind}`);
  }
  for (const [name, kind] of Object.entries(OPTIONAL_EXPORTS)) {
    if (kinds.has(name) && kinds.get(name) !== kind) throw new PluginRejected('missing_export', `export '${name}' is a ${kinds.get(name)}, the ABI needs a ${kind}`);
  }
  const capPages = Math.floor(opts.memoryCapBytes / WASM_PAGE);
  const capped = capMemory(input, capPages);
  const compiled = await WebAssembly.compile(capped.bytes as Uint8Array<ArrayBuffer>);
  return { module: compiled, bytes: capped.bytes, memory: { initialPages: capped.initialPages, maxPages: capped.maxPages }, exports: exports.map((e) => e.name) };
}
