/**
 * The script worker thread: compiles the scripts the pool loads into one QuickJS module whose Wasm
 * memory has a fixed maximum, and runs batches of runs (scripts never run on the main event loop).
 * It writes which run it is in to a shared array, so the pool's watchdog can terminate it when a
 * run passes the hard wall-clock limit (a single QuickJS operation can run long between two
 * interrupt checks). Protocol: see `ToWorker` / the answer format in pool.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { newQuickJSWASMModule, newVariant, RELEASE_SYNC, type QuickJSWASMModule } from 'quickjs-emscripten';
import { CompiledScript } from './sandbox.ts';
import { jsonDepth } from '../input-limits/index.ts';
import type { RunOutcome, ScriptLimits, ScriptMessage } from './contract.ts';
import type { ToWorker } from './pool.ts';

/** [runCounter, inRun, batchId, index]: read by the pool's watchdog (pool.ts). */
const state = new Int32Array(workerData.state as SharedArrayBuffer);
const heapMaxBytes = workerData.heapMaxBytes as number;
const quarantineAfter = workerData.quarantineAfter as number;

const memory = new WebAssembly.Memory({ initial: 256, maximum: Math.ceil(heapMaxBytes / 65536) });
// A fixed maximum bounds every allocation of every script in this thread, including those
// QuickJS's own malloc limit does not count: past it, malloc fails and the run stops with
// `script_memory` (runtime/scripts/sandbox.ts).
const wasmModule = workerData.wasmModule as WebAssembly.Module | undefined;
const module: QuickJSWASMModule = await newQuickJSWASMModule(newVariant(RELEASE_SYNC, wasmModule ? { wasmMemory: memory, wasmModule } : { wasmMemory: memory }));

interface Loaded {
  script?: CompiledScript;
  error?: string;
  /** runs in a row that hit a limit (timeout, memory, stack) */
  hits: number;
}
const scripts = new Map<string, Loaded>();
/** heap size after the last load: growth past it is what runs kept (pool.ts recycles on it) */
let baseHeap = memory.buffer.byteLength;
const LIMIT_CODES = new Set(['script_timeout', 'script_memory', 'script_stack']);

function load(key: string, source: string, env: Record<string, unknown>, limits: ScriptLimits): void {
  if (scripts.has(key)) return;
  try {
    scripts.set(key, { script: new CompiledScript(module, source, env, limits), hits: 0 });
  } catch (err) {
    scripts.set(key, { error: (err as Error).message, hits: 0 });
  }
  baseHeap = memory.buffer.byteLength;
}

function failed(code: string, message: string): RunOutcome {
  return { ok: false, error: { code: code as never, message }, logs: null, commands: null, alarms: null, micros: 0 };
}

/** Runs of one script in a batch below this many go one by one (a batch's fixed cost is a JSON text and a call). */
const BATCH_MIN = 4;
/** Brackets deep a batch's JSON text may be: its array, a message and what a single run's conversion keeps (sandbox.ts MAX_DEPTH). */
const BATCH_MAX_NESTING = 32;

/**
 * A run's result, as JSON characters, at most: every result crosses to the main thread and goes on
 * with the message (a flow's msg.result, a webhook body); 200 runs returning 'x'.repeat(3e6)
 * grew FLUX's RSS by 1.3 GB.
 */
const MAX_RESULT_CHARS = 64 * 1024;

function resultChars(result: unknown): number {
  if (typeof result === 'string') return result.length;
  return result !== null && typeof result === 'object' ? (JSON.stringify(result)?.length ?? 0) : 0;
}

function outcomeOf(entry: Loaded, o: RunOutcome): unknown {
  if (o.ok) {
    entry.hits = 0;
    const chars = resultChars(o.result);
    if (chars > MAX_RESULT_CHARS) return failed('script_error', `the result is ${chars} characters of JSON, over the limit of ${MAX_RESULT_CHARS}`);
    return o.logs || o.commands || o.alarms ? o : [o.micros, o.result === undefined ? null : o.result];
  }
  entry.hits = LIMIT_CODES.has(o.error!.code) ? entry.hits + 1 : 0;
  return o;
}

/**
 * Answers one JSON array: `[bid, heapGrowth, o0, o1, …]`, where a run that completed without logs,
 * commands or alarms is `[micros, result]` and any other is the RunOutcome object. A script with
 * at least BATCH_MIN runs in the batch runs them in one call into QuickJS when they fit its
 * deadline (sandbox.ts `runMany`); scripts are independent, so each runs its messages in order.
 */
function batch(bid: number, keys: string[], text: string, runs: Uint32Array): void {
  let parsed: ScriptMessage[] | undefined;
  const msgs = () => (parsed ??= JSON.parse(text) as ScriptMessage[]);
  const n = runs.length >> 1;
  const out: unknown[] = new Array(n + 2);
  out[0] = bid;
  state[2] = bid;
  // the runs of each script, in order
  const byKey: number[][] = keys.map(() => []);
  for (let i = 0; i < n; i++) byKey[runs[2 * i + 1]!]!.push(i);
  for (let k = 0; k < keys.length; k++) {
    const idx = byKey[k]!;
    const entry = scripts.get(keys[k]!);
    let next = 0;
    const size = entry?.script && entry.hits === 0 && idx.length >= BATCH_MIN ? entry.script.batchSize() : 0;
    // in chunks that fit the script's deadline; the rest one by one from where a chunk stopped short
    while (size >= BATCH_MIN && next < idx.length && idx.length - next >= BATCH_MIN) {
      const chunk = next === 0 && idx.length <= size ? idx : idx.slice(next, next + size);
      // every message of the batch, in order: the text as it came, unparsed
      const whole = chunk.length === n && chunk.every((i, j) => runs[2 * i] === j);
      const json = whole ? text : JSON.stringify(chunk.map((i) => msgs()[runs[2 * i]!]));
      if (jsonDepth(json, BATCH_MAX_NESTING) > BATCH_MAX_NESTING) break;
      // no run of a batch is named to the watchdog: stopped past the hard limit, every run of it
      // goes again to the replacement, which times the script one run at a time first, so the one
      // that hangs there is the one that fails (pool.ts #replace)
      state[3] = -1;
      state[0]!++;
      state[1] = 1;
      const os = entry!.script!.runMany(json, chunk.length);
      state[1] = 0;
      for (let j = 0; j < os.length; j++) out[chunk[j]! + 2] = outcomeOf(entry!, os[j]!);
      next += os.length;
      if (os.length < chunk.length) break;
    }
    for (let j = next; j < idx.length; j++) {
      const i = idx[j]!;
      if (!entry?.script) {
        out[i + 2] = failed('script_syntax', entry?.error ?? 'the script is not loaded');
        continue;
      }
      if (entry.hits >= quarantineAfter) {
        out[i + 2] = failed('script_quarantined', `skipped: the script hit its limits ${entry.hits} times in a row`);
        continue;
      }
      state[3] = i;
      state[0]!++;
      state[1] = 1;
      const o = entry.script.run(msgs()[runs[2 * i]!]!);
      state[1] = 0;
      out[i + 2] = outcomeOf(entry, o);
    }
  }
  out[1] = memory.buffer.byteLength - baseHeap;
  parentPort!.postMessage(JSON.stringify(out));
}

parentPort!.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'load':
      load(m.key, m.source, m.env, m.limits);
      break;
    case 'unload': {
      const s = scripts.get(m.key);
      scripts.delete(m.key);
      s?.script?.dispose();
      break;
    }
    case 'batch':
      batch(m.bid, m.keys, m.msgs, new Uint32Array(m.runs));
      break;
  }
});
parentPort!.postMessage('ready');
