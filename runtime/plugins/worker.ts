/**
 * The plugin worker thread: instantiates plugin modules and runs batches of decode/encode calls
 * (plugins never run on the main event loop: docs/plugin-abi.md). It writes which call it is in to a
 * shared array so the pool's watchdog can terminate it when a call passes its deadline.
 * Protocol with the pool: see `WorkerRequest` / `WorkerReply` in pool.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';

interface Loaded {
  id: string;
  module: WebAssembly.Module;
  capBytes: number;
  inst?: WebAssembly.Instance;
  mem?: WebAssembly.Memory;
  /** a Buffer over `mem`, kept until a `memory.grow` detaches it (then its length reads 0) */
  view?: Buffer;
}

/** A call failed: `cause` is a stable word, `message` says what happened. */
class CallFailure extends Error {
  readonly cause: string;
  constructor(cause: string, message: string) {
    super(message);
    this.cause = cause;
  }
}

const MAX_OUTPUT = 4 * 1024 * 1024;
const MAX_LOG_LINES = 100;
const MAX_LOG_CHARS = 2000;
/** [callCounter, inCall, batchId, index]: read by the pool's watchdog (pool.ts). */
const state = new Int32Array(workerData.state as SharedArrayBuffer);
const loaded = new Map<string, Loaded>();
const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Lenient = new TextDecoder('utf-8');
let logs: string[] = [];
let current: Loaded | undefined;

/** The plugin's memory as bytes: one view reused across calls, renewed after the memory grew. */
function memBytes(p: Loaded): Buffer {
  const v = p.view;
  if (v !== undefined && v.length !== 0) return v;
  return (p.view = Buffer.from(p.mem!.buffer));
}

function instantiate(p: Loaded): WebAssembly.Instance {
  const imports = {
    env: {
      flux_log(ptr: number, len: number) {
        if (logs.length >= MAX_LOG_LINES || !current?.mem) return;
        const m = memBytes(current);
        ptr >>>= 0;
        len = Math.min(len >>> 0, MAX_LOG_CHARS);
        if (ptr + len > m.length) return void logs.push(`(flux_log outside memory: ptr=${ptr} len=${len})`);
        logs.push(utf8Lenient.decode(m.subarray(ptr, ptr + len)));
      },
      // AssemblyScript's abort(message, fileName, line, column): strings are UTF-16 with the byte length at ptr-4.
      abort(msg: number, file: number, line: number, col: number) {
        const str = (ptr: number) => {
          if (!current?.mem || ptr === 0) return '';
          const m = memBytes(current);
          if (ptr < 4 || ptr > m.length) return '';
          const n = new DataView(m.buffer).getUint32(ptr - 4, true);
          if (ptr + n > m.length) return '';
          return Buffer.from(m.buffer, ptr, Math.min(n, MAX_LOG_CHARS * 2)).toString('utf16le');
        };
        throw new CallFailure('abort', `abort: ${str(msg) || 'no message'}${file ? ` at ${str(file)}:${line}:${col}` : ''}`);
      },
    },
  };
  const inst = new WebAssembly.Instance(p.module, imports);
  p.inst = inst;
  p.mem = inst.exports.memory as WebAssembly.Memory;
  p.view = undefined;
  return inst;
}

type Fn = (...args: number[]) => unknown;

function lastLog(): string {
  const l = logs[logs.length - 1];
  return l ? ` (plugin log: ${l.length > 300 ? l.slice(0, 300) + '…' : l})` : '';
}

function checkValues(m: any): string | null {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return 'a message is not an object';
  if (typeof m.device_id !== 'string') return 'a message has no string device_id';
  const v = m.values;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return `message for '${m.device_id}' has no values object`;
  for (const k in v) {
    const t = typeof v[k];
    if (t !== 'number' && t !== 'string' && t !== 'boolean') return `value '${k}' is ${v[k] === null ? 'null' : t}, not a number, string or boolean`;
  }
  if (m.ts !== undefined && (typeof m.ts !== 'number' || !Number.isFinite(m.ts))) return 'ts is not a number of milliseconds';
  return null;
}

/** Runs one call; answers decode's JSON text or encode's bytes. Throws CallFailure. */
function call(p: Loaded, op: number, input: Uint8Array): string | Uint8Array {
  current = p;
  const inst = p.inst ?? instantiate(p);
  const e = inst.exports as Record<string, Fn>;
  const fn = op === 0 ? e.decode : e.encode;
  if (!fn) throw new CallFailure('unsupported', op === 0 ? 'the plugin exports no decode' : 'the plugin exports no encode (it cannot make commands)');
  let outPtr: number;
  let outLen: number;
  try {
    const inPtr = (e.alloc!(input.length) as number) >>> 0;
    let m = memBytes(p);
    if (inPtr + input.length > m.length) throw new CallFailure('out_of_bounds', `alloc(${input.length}) returned ${inPtr}, outside its ${m.length}-byte memory`);
    m.set(input, inPtr);
    const r = fn(inPtr, input.length);
    if (typeof r !== 'bigint') throw new CallFailure('abi', `${op === 0 ? 'decode' : 'encode'} returned ${typeof r}, not an i64 (ptr << 32 | len)`);
    const u = BigInt.asUintN(64, r);
    outPtr = Number(u >> 32n);
    outLen = Number(u & 0xffffffffn);
    m = memBytes(p);
    if (outPtr + outLen > m.length) throw new CallFailure('out_of_bounds', `output out of bounds: ptr=${outPtr} len=${outLen}, memory is ${m.length} bytes`);
    if (outLen > MAX_OUTPUT) throw new CallFailure('output_too_large', `output of ${outLen} bytes is over the ${MAX_OUTPUT}-byte limit`);
    let out: string | Uint8Array;
    if (op === 0) {
      // The lenient decoder is about twice as fast as the fatal one; it marks bad bytes with U+FFFD,
      // and only then does the fatal one decide (the plugin may also have written a real U+FFFD).
      out = m.toString('utf8', outPtr, outPtr + outLen);
      if (out.includes('\uFFFD')) {
        try {
          out = utf8.decode(m.subarray(outPtr, outPtr + outLen));
        } catch {
          throw new CallFailure('invalid_utf8', `output is not valid UTF-8 (${outLen} bytes at ${outPtr})`);
        }
      }
    } else {
      out = new Uint8Array(m.subarray(outPtr, outPtr + outLen)); // a copy: the plugin may reuse this memory
    }
    if (e.dealloc) {
      e.dealloc(inPtr, input.length);
      e.dealloc(outPtr, outLen);
    }
    return out;
  } catch (err) {
    // A trapped instance may have half-updated its allocator: start the next call on a fresh one.
    p.inst = undefined;
    const memSize = p.mem?.buffer.byteLength ?? 0;
    p.mem = undefined;
    p.view = undefined;
    if (err instanceof CallFailure) {
      if (err.cause === 'abort') throw new CallFailure(memSize > p.capBytes / 2 ? 'memory' : 'trap', err.message + lastLog());
      throw new CallFailure(err.cause, err.message + lastLog());
    }
    if (err instanceof WebAssembly.RuntimeError || err instanceof RangeError) {
      // memory.grow past the cap returns -1 inside the plugin, which then traps (Rust: alloc error,
      // AssemblyScript: abort): a trap with most of the cap in use is reported as a memory failure.
      const atCap = memSize > p.capBytes / 2;
      const usage = atCap ? ` with ${Math.round(memSize / 2 ** 20)} MiB of the ${p.capBytes / 2 ** 20} MiB memory cap in use` : '';
      throw new CallFailure(atCap ? 'memory' : 'trap', `${(err as Error).message}${usage}${lastLog()}`);
    }
    throw new CallFailure('trap', `${(err as Error).message ?? err}${lastLog()}`);
  }
}

/** Parses decode's JSON and checks it is a StandardMessage, an array of them or `{ error }`. */
function checkDecoded(text: string): string {
  let v: any;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new CallFailure('invalid_json', `output is not JSON (${(err as Error).message}): ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v.error === 'string' && v.device_id === undefined) {
    throw new CallFailure('plugin_error', v.error);
  }
  if (Array.isArray(v)) {
    for (const m of v) {
      const bad = checkValues(m);
      if (bad) throw new CallFailure('invalid_message', bad);
    }
  } else {
    const bad = checkValues(v);
    if (bad) throw new CallFailure('invalid_message', bad);
  }
  return text;
}

/** A batch from the pool: `buf` holds `[n, offsets[0..n], (keyIndex << 1 | op)[0..n-1]]` as u32, then the frames' bytes (pool.ts #send). */
interface Batch {
  t: 'batch';
  bid: number;
  keys: string[];
  buf: ArrayBuffer;
  logs: boolean;
}

function runBatch(b: Batch): void {
  const n = new Uint32Array(b.buf, 0, 1)[0]!;
  const u32 = new Uint32Array(b.buf, 0, 2 + 2 * n);
  const data = new Uint8Array(b.buf, (2 + 2 * n) * 4);
  // The answer is one JSON array `[bid, out0, out1, …]` (failed calls and encodes answer null there).
  let json = '[' + b.bid;
  let errors: [number, string, string][] | undefined;
  let bins: [number, Uint8Array][] | undefined;
  const allLogs: (string[] | null)[] | null = b.logs ? new Array(n).fill(null) : null;
  let keyIndex = -1;
  let p: Loaded | undefined;
  // Plain stores, no fences: the watchdog only needs to see them within a few ms (x86/ARM make
  // them visible far sooner), and a fence per call would cost more than the call itself.
  state[2] = b.bid;
  for (let i = 0; i < n; i++) {
    state[3] = i;
    state[0]!++;
    state[1] = 1;
    if (logs.length) logs = [];
    const w = u32[2 + n + i]!;
    if (w >>> 1 !== keyIndex) {
      keyIndex = w >>> 1;
      p = loaded.get(b.keys[keyIndex]!);
    }
    try {
      if (!p) throw new CallFailure('not_loaded', `plugin version ${b.keys[keyIndex]} is not loaded in this worker`);
      const out = call(p, w & 1, data.subarray(u32[1 + i]!, u32[2 + i]!));
      state[1] = 0;
      if (typeof out === 'string') json += ',' + checkDecoded(out);
      else {
        json += ',null';
        (bins ??= []).push([i, out]);
      }
    } catch (err) {
      state[1] = 0;
      json += ',null';
      const f = err instanceof CallFailure ? err : new CallFailure('trap', String((err as Error)?.message ?? err));
      (errors ??= []).push([i, f.cause, f.message]);
    }
    if (allLogs && logs.length) allLogs[i] = logs;
  }
  json += ']';
  // The common case is the string alone: the cheapest thing to post and to receive.
  if (!errors && !bins && !allLogs) parentPort!.postMessage(json);
  else parentPort!.postMessage({ t: 'done', json, errors: errors ?? [], bins: bins ?? [], logs: allLogs });
}

function probe(module: WebAssembly.Module, capBytes: number): { abi: number; meta: unknown; params: Record<string, number> } {
  const p: Loaded = { id: 'probe', module, capBytes };
  current = p;
  logs = [];
  const inst = instantiate(p);
  const e = inst.exports as Record<string, Fn>;
  const abi = e.flux_abi_version!() as number;
  const params: Record<string, number> = {};
  for (const name of ['alloc', 'dealloc', 'decode', 'encode', 'meta', 'flux_abi_version']) if (typeof e[name] === 'function') params[name] = (e[name] as Fn).length;
  let meta: unknown = null;
  if (e.meta && abi === 1) {
    const r = e.meta();
    if (typeof r !== 'bigint') throw new Error('meta returned a non-i64 value');
    const u = BigInt.asUintN(64, r);
    const ptr = Number(u >> 32n);
    const len = Number(u & 0xffffffffn);
    const m = memBytes(p);
    if (ptr + len > m.length) throw new Error(`meta output out of bounds: ptr=${ptr} len=${len}, memory is ${m.length} bytes`);
    let text: string;
    try {
      text = utf8.decode(m.subarray(ptr, ptr + len));
    } catch {
      throw new Error('meta output is not valid UTF-8');
    }
    try {
      meta = JSON.parse(text);
    } catch (err) {
      throw new Error(`meta output is not JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  return { abi, meta, params };
}

parentPort!.on('message', (m: any) => {
  switch (m.t) {
    case 'batch':
      runBatch(m as Batch);
      break;
    case 'load':
      loaded.set(m.key, { id: m.id, module: m.module, capBytes: m.capBytes });
      break;
    case 'unload':
      loaded.delete(m.key);
      break;
    case 'probe': {
      Atomics.store(state, 2, -m.pid);
      Atomics.add(state, 0, 1);
      Atomics.store(state, 1, 1);
      try {
        const r = probe(m.module, m.capBytes);
        Atomics.store(state, 1, 0);
        parentPort!.postMessage({ t: 'probed', pid: m.pid, ok: true, ...r });
      } catch (err) {
        Atomics.store(state, 1, 0);
        parentPort!.postMessage({ t: 'probed', pid: m.pid, ok: false, error: `${(err as Error).message ?? err}${lastLog()}` });
      }
      break;
    }
  }
});
