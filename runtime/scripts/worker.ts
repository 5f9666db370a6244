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

/**
 * Answers one JSON array: `[bid, heapGrowth, o0, o1, …]`, where a run that completed without logs,
 * commands or alarms is `[micros, result]` and any other is the RunOutcome object.
 */
function batch(bid: number, keys: string[], msgs: ScriptMessage[], runs: Uint32Array): void {
  const n = runs.length >> 1;
  const out: unknown[] = [bid, 0];
  state[2] = bid;
  for (let i = 0; i < n; i++) {
    const msg = msgs[runs[2 * i]!]!;
    const entry = scripts.get(keys[runs[2 * i + 1]!]!);
    if (!entry?.script) {
      out.push(failed('script_syntax', entry?.error ?? 'the script is not loaded'));
      continue;
    }
    if (entry.hits >= quarantineAfter) {
      out.push(failed('script_quarantined', `skipped: the script hit its limits ${entry.hits} times in a row`));
      continue;
    }
    state[3] = i;
    state[0]!++;
    state[1] = 1;
    const o = entry.script.run(msg);
    state[1] = 0;
    if (o.ok) {
      entry.hits = 0;
      out.push(o.logs || o.commands || o.alarms ? o : [o.micros, o.result === undefined ? null : o.result]);
    } else {
      entry.hits = LIMIT_CODES.has(o.error!.code) ? entry.hits + 1 : 0;
      out.push(o);
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
      batch(m.bid, m.keys, JSON.parse(m.msgs) as ScriptMessage[], new Uint32Array(m.runs));
      break;
  }
});
parentPort!.postMessage('ready');
