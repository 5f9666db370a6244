/** One compiled script in its own QuickJS runtime: compiled once per version, re-run with callFunction under a deadline and a memory cap. */
import type { QuickJSContext, QuickJSHandle, QuickJSRuntime, QuickJSWASMModule } from 'quickjs-emscripten';
import { translateScript, lineColumn, offsetOf, TranslateError, type Translation } from './translate.ts';
import { ALARM_LEVELS, ScriptSyntaxError, type AlarmLevel, type AlarmRequest, type CommandRequest, type LogEntry, type RunOutcome, type ScriptErrorCode, type ScriptLimits, type ScriptMessage } from './contract.ts';

const MAX_ENTRIES = 100;
const MAX_LOG_CHARS = 2000;
const MAX_DEPTH = 32;
const FILE = 'rule.js';
/** The wrapper's first line; user code starts on line 2 of the evaluated text. */
const PREFIX = '(function (msg) {"use strict";\n';
const SUFFIX = '\n})';
/** Runs between precise usage checks when the Wasm heap did not grow (a check walks the heap: 0.4–3 ms). */
const CHECK_EVERY = 8192;
/** Property names kept as runtime strings per script (message keys repeat: device_id, values, temperature…). */
const MAX_KEY_HANDLES = 512;

/**
 * Bytes of the QuickJS module's Wasm heap (shared by every runtime; it never shrinks). Read through
 * the emscripten module, which quickjs-emscripten keeps in a non-public field: 11 ns a read, so a
 * run that grew the heap is noticed at once and only then is the costly usage walk done.
 */
function heapBytes(module: QuickJSWASMModule): number {
  return (module as unknown as { module?: { HEAPU8?: Uint8Array } }).module?.HEAPU8?.byteLength ?? 0;
}

interface Capture {
  logs: LogEntry[] | null;
  commands: CommandRequest[] | null;
  alarms: AlarmRequest[] | null;
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
  /** Wasm heap size past which a run is interrupted as a memory hit (Infinity outside runs) */
  #heapCeiling = Infinity;
  #heapHit = false;
  #capture: Capture = { logs: null, commands: null, alarms: null };
  #runsSinceCheck = 0;
  #microsSinceCheck = 0;
  #disposed = false;
  /** times the runtime was thrown away and rebuilt (after a limit hit or growth) */
  rebuilds = 0;

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
    // The heap check catches allocations QuickJS's malloc limit does not count (environment notes):
    // the shared Wasm heap grew by more than the script's limit during this run.
    rt.setInterruptHandler(() => {
      if (heapBytes(this.#module) > this.#heapCeiling) return (this.#heapHit = true);
      return performance.now() > this.#deadline;
    });
    const vm = rt.newContext();
    this.#rt = rt;
    this.#vm = vm;
    try {
      // Only bounded work runs here (the env freeze, defining the function): the deadline is for a
      // machine so loaded that the first call into the Wasm module is slow, not for user code.
      this.#deadline = performance.now() + Math.max(2000, this.limits.deadlineMs * 50);
      this.#defineGlobals();
      const ev = vm.evalCode(PREFIX + this.#translation.code + SUFFIX, FILE);
      if (ev.error) {
        const e = vm.dump(ev.error) as { name?: string; message?: string; stack?: string };
        ev.error.dispose();
        const where = this.#position(e.stack);
        throw new ScriptSyntaxError(e.message ?? String(e), where?.line ?? 1, where?.column ?? 1);
      }
      this.#fn = ev.value;
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

  #defineGlobals(): void {
    const vm = this.#vm;
    const cap = this.#capture;
    const text = (h: QuickJSHandle): string => {
      const t = vm.typeof(h);
      if (t === 'string') return vm.getString(h);
      const v = vm.dump(h);
      return typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
    };
    const logger = (level: LogEntry['level']) => (...args: QuickJSHandle[]) => {
      const list = (cap.logs ??= []);
      if (list.length >= MAX_ENTRIES) return;
      let message = args.map(text).join(' ');
      if (message.length > MAX_LOG_CHARS) message = message.slice(0, MAX_LOG_CHARS) + '…';
      list.push({ level, message });
    };
    const fns: Record<string, (...args: QuickJSHandle[]) => void> = {
      print: logger('print'),
      log_info: logger('info'),
      log_warn: logger('warn'),
      send_command: (device, command, params) => {
        if (!device || vm.typeof(device) !== 'string') throw new TypeError('send_command(device_id, command, params): device_id must be a string');
        if (!command || vm.typeof(command) !== 'string') throw new TypeError('send_command(device_id, command, params): command must be a string');
        const p = params && vm.typeof(params) !== 'undefined' ? vm.dump(params) : {};
        if (p === null || typeof p !== 'object' || Array.isArray(p)) throw new TypeError('send_command(device_id, command, params): params must be an object');
        const list = (cap.commands ??= []);
        if (list.length >= MAX_ENTRIES) throw new RangeError(`send_command: more than ${MAX_ENTRIES} commands in one run`);
        list.push({ device_id: vm.getString(device), command: vm.getString(command), params: p as Record<string, unknown> });
      },
      raise_alarm: (level, message) => {
        const l = level && vm.typeof(level) === 'string' ? vm.getString(level) : '';
        if (!(ALARM_LEVELS as readonly string[]).includes(l)) throw new TypeError(`raise_alarm(level, message): level must be one of ${ALARM_LEVELS.join(', ')}`);
        const list = (cap.alarms ??= []);
        if (list.length >= MAX_ENTRIES) throw new RangeError(`raise_alarm: more than ${MAX_ENTRIES} alarms in one run`);
        list.push({ level: l as AlarmLevel, message: message ? text(message).slice(0, 1000) : '' });
      },
    };
    for (const [name, fn] of Object.entries(fns)) {
      const h = vm.newFunction(name, fn);
      vm.setProp(vm.global, name, h);
      h.dispose();
    }
    // env: read-only, deep-frozen; the sandbox has no other globals than the standard library.
    const r = vm.evalCode(
      `(() => { const f = (o) => { if (o && typeof o === 'object') { Object.freeze(o); for (const k of Object.keys(o)) f(o[k]); } return o; };
        Object.defineProperty(globalThis, 'env', { value: f(${JSON.stringify(this.env ?? {})}), writable: false, configurable: false }); })()`,
      'env.js',
    );
    if (r.error) {
      const e = vm.dump(r.error);
      r.error.dispose();
      throw new Error(`cannot define env: ${JSON.stringify(e)}`);
    }
    r.value.dispose();
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
        return vm.dump(h);
      case 'function':
      case 'symbol':
        return undefined;
      default:
        return vm.dump(h);
    }
  }

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
      const e = vm.dump(r.error) as { name?: string; message?: string; stack?: string } | string;
      r.error.dispose();
      const name = typeof e === 'object' && e ? (e.name ?? 'Error') : 'Error';
      const message = typeof e === 'object' && e ? (e.message ?? JSON.stringify(e)) : String(e);
      let code: ScriptErrorCode = 'script_error';
      let text: string;
      if (message === 'out of memory' || (message === 'interrupted' && this.#heapHit)) {
        code = 'script_memory';
        text = `the script exceeded its memory limit of ${Math.round(this.limits.memoryBytes / 1048576)} MiB`;
      } else if (message === 'interrupted') {
        code = 'script_timeout';
        text = `the script ran longer than its ${this.limits.deadlineMs} ms deadline and was stopped`;
      } else if (message === 'stack overflow') {
        code = 'script_stack';
        text = 'the script overflowed its stack (too deep recursion)';
      } else {
        const where = typeof e === 'object' && e ? this.#position(e.stack) : undefined;
        text = `${name}: ${message}${where ? ` (line ${where.line}, column ${where.column})` : ''}`;
      }
      outcome = { ok: false, error: { code, message: text }, logs: cap.logs, commands: cap.commands, alarms: cap.alarms, micros: 0 };
      // A runtime that hit a limit may hold garbage or half-built state: start from a clean one.
      if (code !== 'script_error') this.#rebuild();
    } else {
      const result = this.#fromHandle(r.value);
      r.value.dispose();
      outcome = { ok: true, result, logs: cap.logs, commands: cap.commands, alarms: cap.alarms, micros: 0 };
    }
    outcome.micros = Math.round((performance.now() - t0) * 1000);
    this.#microsSinceCheck += outcome.micros;
    // Checked after every deadline's worth of run time: a script can only keep what it allocated in
    // that time past a check (~2% overhead for a 5 µs rule: one 0.4 ms walk per 4,000 runs).
    if (++this.#runsSinceCheck >= CHECK_EVERY || this.#microsSinceCheck > this.limits.deadlineMs * 1000 || heapBytes(this.#module) > heapBefore) this.#checkGrowth();
    return outcome;
  }

  /**
   * QuickJS's limit undercounts many small allocations (environment notes), so state a script
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
