/** One compiled script in its own QuickJS runtime: compiled once per version, re-run with callFunction under a deadline and a memory cap. */
import type { QuickJSContext, QuickJSHandle, QuickJSRuntime, QuickJSWASMModule } from 'quickjs-emscripten';
import { translateScript, lineColumn, offsetOf, TranslateError, type Translation } from './translate.ts';
import { ScriptSyntaxError, type RunOutcome, type ScriptLimits, type ScriptMessage } from './contract.ts';
import { defineGlobals, dumpOf, failedRun, type Capture, type ThrownValue } from './globals.ts';
import { BATCH_SHARE, DRIVER, driverAnswer, LEARN_RUNS, MAX_BATCH_INDEX, NOTHING_CAPTURED } from './batch.ts';

const MAX_DEPTH = 32;
const FILE = 'rule.js';
/** The wrapper's first line; user code starts on line 2 of the evaluated text. */
const PREFIX = '(function (msg) {"use strict";\n';
const SUFFIX = '\n})';
/** Runs between precise usage checks when the Wasm heap did not grow (a check walks the heap: 0.4–3 ms). */
const CHECK_EVERY = 8192;
/** Property names kept as runtime strings per script (message keys repeat: device_id, values, temperature…). */
const MAX_KEY_HANDLES = 512;
/** CPU time this thread has used, µs. */
function threadMicros(): number {
  const u = process.threadCpuUsage();
  return u.user + u.system;
}

/**
 * Bytes of the QuickJS module's Wasm heap (shared by every runtime; it never shrinks). Read through
 * the emscripten module, which quickjs-emscripten keeps in a non-public field: 11 ns a read, so a
 * run that grew the heap is noticed at once and only then is the costly usage walk done.
 */
function heapBytes(module: QuickJSWASMModule): number {
  return (module as unknown as { module?: { HEAPU8?: Uint8Array } }).module?.HEAPU8?.byteLength ?? 0;
}

export class CompiledScript {
  readonly source: string;
  readonly limits: ScriptLimits;
  readonly env: Record<string, unknown>;
  #module: QuickJSWASMModule;
  #translation: Translation;
  #rt!: QuickJSRuntime;
  #vm!: QuickJSContext;
  #fn!: QuickJSHandle;
  /**
   * Property-name handles, made once: `setProp` with a string key copies the name into the runtime
   * and wraps it in a new handle on every call (half the calls into the Wasm module per message).
   */
  #keys = new Map<string, QuickJSHandle>();
  #deadline = Infinity;
  /** a batch's deadline in this thread's CPU time (µs; Infinity outside batches) */
  #cpuDeadline = Infinity;
  /** Wasm heap size past which a run is interrupted as a memory hit (Infinity outside runs) */
  #heapCeiling = Infinity;
  #heapHit = false;
  #capture: Capture = { logs: null, commands: null, alarms: null };
  #runsSinceCheck = 0;
  #microsSinceCheck = 0;
  #disposed = false;
  #driver!: QuickJSHandle;
  /** `{ i }`: the run of a batch in progress, set by the driver (-1 outside batches) */
  #at!: QuickJSHandle;
  /** what each run of the batch in progress captured, by its index (null outside batches) */
  #batchCaptures: (Capture | undefined)[] | null = null;
  /** runs timed one by one so far, and a moving mean of what a run takes (µs): decide whether a batch fits */
  #timedRuns = 0;
  #meanMicros = 0;
  /** times the runtime was thrown away and rebuilt (after a limit hit or growth) */
  rebuilds = 0;
  /** batches run in one call, and batches run again one message at a time */
  batches = 0;
  batchFallbacks = 0;

  constructor(module: QuickJSWASMModule, source: string, env: Record<string, unknown>, limits: ScriptLimits) {
    this.source = source;
    this.env = env;
    this.limits = limits;
    this.#module = module;
    try {
      this.#translation = translateScript(source);
    } catch (err) {
      if (err instanceof TranslateError) {
        const { line, column } = lineColumn(source, err.offset);
        throw new ScriptSyntaxError(err.message, line, column);
      }
      throw err;
    }
    this.#build();
  }

  #build(): void {
    const rt = this.#module.newRuntime();
    rt.setMemoryLimit(this.limits.memoryBytes);
    rt.setMaxStackSize(this.limits.stackBytes);
    // The heap check catches allocations QuickJS's malloc limit does not count (docs/scripts.md "Limits"):
    // the shared Wasm heap grew by more than the script's limit during this run.
    rt.setInterruptHandler(() => {
      if (heapBytes(this.#module) > this.#heapCeiling) return (this.#heapHit = true);
      if (this.#cpuDeadline !== Infinity && threadMicros() > this.#cpuDeadline) return true;
      return performance.now() > this.#deadline;
    });
    const vm = rt.newContext();
    this.#rt = rt;
    this.#vm = vm;
    try {
      // Only bounded work runs here (the env freeze, defining the function): the deadline is for a
      // machine so loaded that the first call into the Wasm module is slow, not for user code.
      this.#deadline = performance.now() + Math.max(2000, this.limits.deadlineMs * 50);
      defineGlobals(vm, this.#captureOf, this.env);
      const ev = vm.evalCode(PREFIX + this.#translation.code + SUFFIX, FILE);
      if (ev.error) {
        const e = vm.dump(ev.error) as { name?: string; message?: string; stack?: string };
        ev.error.dispose();
        const where = this.#position(e.stack);
        throw new ScriptSyntaxError(e.message ?? String(e), where?.line ?? 1, where?.column ?? 1);
      }
      this.#fn = ev.value;
      const driver = vm.evalCode(DRIVER, 'driver.js');
      if (driver.error) {
        const e = vm.dump(driver.error);
        driver.error.dispose();
        throw new Error(`cannot define the batch driver: ${JSON.stringify(e)}`);
      }
      this.#at = vm.unwrapResult(vm.evalCode('({ i: -1 })', 'at.js'));
      const made = vm.callFunction(driver.value, vm.undefined, this.#fn, this.#at);
      driver.value.dispose();
      this.#driver = vm.unwrapResult(made);
    } catch (err) {
      vm.dispose();
      rt.dispose();
      throw err;
    } finally {
      this.#deadline = Infinity;
    }
  }

  /** `rule.js:L:C` of the first stack frame, mapped back to the user's source. */
  #position(stack: string | undefined): { line: number; column: number } | undefined {
    const m = /rule\.js:(\d+):(\d+)/.exec(stack ?? '');
    if (!m) return undefined;
    const line = Number(m[1]) - 1;
    if (line < 1) return { line: 1, column: 1 };
    const code = this.#translation.code;
    const off = this.#translation.originalOffset(Math.min(offsetOf(code, line, Number(m[2])), code.length));
    return lineColumn(this.source, off);
  }

  #toHandle(v: unknown, depth: number): QuickJSHandle {
    const vm = this.#vm;
    switch (typeof v) {
      case 'number':
        return vm.newNumber(v);
      case 'string':
        return vm.newString(v);
      case 'boolean':
        return v ? vm.true : vm.false;
      case 'bigint':
        return vm.newNumber(Number(v));
      case 'object': {
        if (v === null || depth > MAX_DEPTH) return vm.null;
        if (Array.isArray(v)) {
          const a = vm.newArray();
          for (let i = 0; i < v.length; i++) {
            const h = this.#toHandle(v[i], depth + 1);
            vm.setProp(a, i, h);
            h.dispose();
          }
          return a;
        }
        if (v instanceof Date) return vm.newNumber(v.getTime());
        if (Buffer.isBuffer(v)) return vm.newString(v.toString('base64'));
        const o = vm.newObject();
        for (const k in v) {
          const h = this.#toHandle((v as Record<string, unknown>)[k], depth + 1);
          vm.setProp(o, this.#key(k), h);
          h.dispose();
        }
        return o;
      }
      default:
        return vm.undefined;
    }
  }

  #key(k: string): QuickJSHandle | string {
    let h = this.#keys.get(k);
    if (h === undefined) {
      if (this.#keys.size >= MAX_KEY_HANDLES) return k;
      h = this.#vm.newString(k);
      this.#keys.set(k, h);
    }
    return h;
  }

  #fromHandle(h: QuickJSHandle): unknown {
    const vm = this.#vm;
    switch (vm.typeof(h)) {
      case 'boolean':
      case 'number':
      case 'string':
      case 'undefined':
        return vm.dump(h); // a primitive: no handle of its own to lose (dumpOf is for objects)
      case 'function':
      case 'symbol':
        return undefined;
      case 'bigint':
        // as a message's bigints reach the script: a number (an answer crosses threads as JSON, which has no bigint)
        return Number(vm.getBigInt(h));
      default:
        return dumpOf(vm, h);
    }
  }

  /** The lists a side-effect global called now files under: the single run's, or those of the batch's run in progress. */
  readonly #captureOf = (): Capture => {
    const batch = this.#batchCaptures;
    if (batch === null) return this.#capture;
    const h = this.#vm.getProp(this.#at, 'i');
    const i = this.#vm.getNumber(h);
    h.dispose();
    // `at` is the driver's own object; a run index outside the batch would be a bug, filed nowhere
    if (!Number.isInteger(i) || i < 0 || i > MAX_BATCH_INDEX) return { logs: null, commands: null, alarms: null };
    return (batch[i] ??= { logs: null, commands: null, alarms: null });
  };

  /** Runs the script on `msg`. Never throws for what the script does; a limit hit rebuilds the runtime. */
  run(msg: ScriptMessage): RunOutcome {
    if (this.#disposed) throw new Error('script was disposed');
    const cap = this.#capture;
    cap.logs = cap.commands = cap.alarms = null;
    const vm = this.#vm;
    const heapBefore = heapBytes(this.#module);
    const t0 = performance.now();
    let outcome: RunOutcome;
    const arg = this.#toHandle(msg, 0);
    this.#deadline = t0 + this.limits.deadlineMs;
    this.#heapCeiling = heapBefore + this.limits.memoryBytes;
    this.#heapHit = false;
    const r = vm.callFunction(this.#fn, vm.undefined, arg);
    this.#deadline = Infinity;
    this.#heapCeiling = Infinity;
    arg.dispose();
    if (r.error) {
      outcome = this.#classify(r.error, cap);
      r.error.dispose();
      // A runtime that hit a limit may hold garbage or half-built state: start from a clean one.
      if (outcome.error!.code !== 'script_error') this.#rebuild();
    } else {
      const result = this.#fromHandle(r.value);
      r.value.dispose();
      outcome = { ok: true, result, logs: cap.logs, commands: cap.commands, alarms: cap.alarms, micros: 0 };
    }
    outcome.micros = Math.round((performance.now() - t0) * 1000);
    if (this.#timedRuns < LEARN_RUNS) this.#timedRuns++;
    this.#meanMicros += (outcome.micros - this.#meanMicros) / this.#timedRuns;
    this.#ranFor(1, outcome.micros, heapBefore);
    return outcome;
  }

  /** What a thrown value makes of a run that captured `cap` (the caller rebuilds the runtime after a limit hit). */
  #classify(error: QuickJSHandle, cap: Capture): RunOutcome {
    const e = dumpOf(this.#vm, error) as ThrownValue;
    return failedRun(e, this.limits, this.#heapHit, cap, () => (typeof e === 'object' && e ? this.#position(e.stack) : undefined));
  }

  /** Checked after every deadline's worth of run time: a script can only keep what it allocated in that time past a check (~2% overhead for a 5 µs rule: one 0.4 ms walk per 4,000 runs). */
  #ranFor(runs: number, micros: number, heapBefore: number): void {
    this.#runsSinceCheck += runs;
    this.#microsSinceCheck += micros;
    if (this.#runsSinceCheck >= CHECK_EVERY || this.#microsSinceCheck > this.limits.deadlineMs * 1000 || heapBytes(this.#module) > heapBefore) this.#checkGrowth();
  }

  /**
   * How many messages may run as one batch (0: none): its runs were timed, and that many of its mean
   * run fit well within one run's deadline (a batch runs under it).
   */
  batchSize(): number {
    if (this.#timedRuns < LEARN_RUNS) return 0;
    return Math.floor((this.limits.deadlineMs * 1000 * BATCH_SHARE) / Math.max(this.#meanMicros, 1));
  }

  /**
   * Runs the script on the messages of `json` (a JSON array of `count` messages, none nested deeper
   * than a single run's conversion keeps) in one call into QuickJS: the same outcomes as `run` on
   * each in turn, each run's micros the batch's mean. Answers the outcomes of a prefix: all of them,
   * up to a run that hit a limit (the runtime is rebuilt), or none when the batch was interrupted (its
   * deadline is one run's) or failed outside the script: the runtime is rebuilt and the caller runs
   * those messages again one at a time, as the runs of a replaced worker are (docs/scripts.md).
   * What side-effect globals capture is filed under the run that called them.
   */
  runMany(json: string, count: number): RunOutcome[] {
    if (this.#disposed) throw new Error('script was disposed');
    const vm = this.#vm;
    const heapBefore = heapBytes(this.#module);
    const t0 = performance.now();
    const text = vm.newString(json);
    const keep = vm.newObject();
    // One run's deadline for the whole batch, in this thread's CPU time: a batch is thousands of
    // times longer than a run, so on a busy machine it is far likelier to be preempted midway, and
    // wall-clock time would cut it short for waiting. Ten deadlines of wall-clock time stay a backstop.
    this.#cpuDeadline = threadMicros() + this.limits.deadlineMs * 1000;
    this.#deadline = t0 + this.limits.deadlineMs * 10;
    this.#heapCeiling = heapBefore + this.limits.memoryBytes;
    this.#heapHit = false;
    const captures: (Capture | undefined)[] = [];
    this.#batchCaptures = captures;
    const r = vm.callFunction(this.#driver, vm.undefined, text, keep);
    this.#batchCaptures = null;
    this.#deadline = Infinity;
    this.#cpuDeadline = Infinity;
    this.#heapCeiling = Infinity;
    text.dispose();
    let answer: ReturnType<typeof driverAnswer>;
    if (r.error) r.error.dispose();
    else {
      answer = driverAnswer(vm.getString(r.value), count);
      r.value.dispose();
    }
    if (!answer) {
      keep.dispose();
      // timed one by one again before the next batch
      this.#timedRuns = 0;
      this.batchFallbacks++;
      this.#rebuild();
      return [];
    }
    const { results, special, ran } = answer;
    const micros = Math.round(((performance.now() - t0) * 1000) / ran);
    const out: RunOutcome[] = new Array(ran);
    for (let i = 0; i < ran; i++) {
      const c = captures[i];
      out[i] = c ? { ok: true, result: results[i], logs: c.logs, commands: c.commands, alarms: c.alarms, micros } : { ok: true, result: results[i], logs: null, commands: null, alarms: null, micros };
    }
    let limitHit = false;
    for (const k of special) {
      const i = k < 0 ? -1 - k : k;
      const h = vm.getProp(keep, i);
      if (k < 0) {
        const o = this.#classify(h, captures[i] ?? NOTHING_CAPTURED);
        o.micros = micros;
        limitHit ||= o.error!.code !== 'script_error';
        out[i] = o;
      } else out[i].result = this.#fromHandle(h) ?? null;
      h.dispose();
    }
    keep.dispose();
    this.batches++;
    this.#meanMicros += (micros - this.#meanMicros) / LEARN_RUNS;
    if (limitHit) this.#rebuild();
    else this.#ranFor(ran, micros * ran, heapBefore);
    return out;
  }
  /**
   * QuickJS's limit undercounts many small allocations (docs/scripts.md "Limits"), so state a script
   * keeps in globals can grow past it: rebuild once it uses half the cap. Checked after a run that
   * grew the Wasm heap, after each deadline's worth of run time, and every CHECK_EVERY runs.
   */
  #checkGrowth(): void {
    this.#runsSinceCheck = 0;
    this.#microsSinceCheck = 0;
    const h = this.#rt.computeMemoryUsage();
    const usage = this.#vm.dump(h) as { memory_used_size?: number; malloc_size?: number };
    h.dispose();
    const used = usage.memory_used_size ?? usage.malloc_size ?? 0;
    if (used > this.limits.memoryBytes / 2) this.#rebuild();
  }

  /** Memory this script's runtime uses now, in bytes. */
  memoryUsed(): number {
    const h = this.#rt.computeMemoryUsage();
    const usage = this.#vm.dump(h) as { memory_used_size?: number };
    h.dispose();
    return usage.memory_used_size ?? 0;
  }

  #rebuild(): void {
    this.#teardown();
    this.#build();
    this.rebuilds++;
    this.#runsSinceCheck = 0;
    this.#microsSinceCheck = 0;
  }

  #teardown(): void {
    try {
      for (const h of this.#keys.values()) h.dispose();
      this.#keys.clear();
      this.#driver?.dispose();
      this.#at?.dispose();
      this.#fn?.dispose();
      this.#vm?.dispose();
      this.#rt?.dispose();
    } catch {
      // A runtime that failed mid-run may refuse a clean dispose; its memory goes back with the module.
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#teardown();
  }
}
