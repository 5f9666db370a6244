/**
 * The globals a rule script gets besides JavaScript's standard library: the side-effect functions,
 * whose calls the host captures for the run that made them (`captureOf` answers that run's lists,
 * also inside a batch of runs), and `env`, deep-frozen; and what a run that threw answers, with
 * what it captured before.
 */
import type { QuickJSContext, QuickJSHandle } from 'quickjs-emscripten';
import { ALARM_LEVELS, type AlarmLevel, type AlarmRequest, type CommandRequest, type LogEntry, type RunOutcome, type ScriptErrorCode, type ScriptLimits } from './contract.ts';

const MAX_ENTRIES = 100;
const MAX_LOG_CHARS = 2000;
const MAX_PARAMS_CHARS = 16 * 1024;

/** What the side-effect functions captured during one run (null: nothing, no allocation). */
export interface Capture {
  logs: LogEntry[] | null;
  commands: CommandRequest[] | null;
  alarms: AlarmRequest[] | null;
}

/**
 * vm.dump of a handle that stays the caller's: quickjs-emscripten's dump disposes the handle of a
 * promise, and the caller's own dispose then threw ("Lifetime not alive") in the worker thread:
 * a script returning or throwing a promise crashed its worker, and the other runs of its batch.
 */
export function dumpOf(vm: QuickJSContext, h: QuickJSHandle): unknown {
  const copy = h.dup();
  try {
    return vm.dump(copy);
  } finally {
    if (copy.alive) copy.dispose();
  }
}

export function defineGlobals(vm: QuickJSContext, captureOf: () => Capture, env: Record<string, unknown>): void {
  const text = (h: QuickJSHandle): string => {
    const t = vm.typeof(h);
    if (t === 'string') return vm.getString(h);
    const v = dumpOf(vm, h);
    return typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
  };
  const logger = (level: LogEntry['level']) => (...args: QuickJSHandle[]) => {
    const cap = captureOf();
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
      const p = params && vm.typeof(params) !== 'undefined' ? dumpOf(vm, params) : {};
      if (p === null || typeof p !== 'object' || Array.isArray(p)) throw new TypeError('send_command(device_id, command, params): params must be an object');
      // bounded like a run's result (worker.ts): a hundred commands of megabytes crossed to the main thread
      if (JSON.stringify(p).length > MAX_PARAMS_CHARS) throw new RangeError(`send_command: params over ${MAX_PARAMS_CHARS} characters of JSON`);
      const cap = captureOf();
      const list = (cap.commands ??= []);
      if (list.length >= MAX_ENTRIES) throw new RangeError(`send_command: more than ${MAX_ENTRIES} commands in one run`);
      list.push({ device_id: vm.getString(device), command: vm.getString(command), params: p as Record<string, unknown> });
    },
    raise_alarm: (level, message) => {
      const l = level && vm.typeof(level) === 'string' ? vm.getString(level) : '';
      if (!(ALARM_LEVELS as readonly string[]).includes(l)) throw new TypeError(`raise_alarm(level, message): level must be one of ${ALARM_LEVELS.join(', ')}`);
      const cap = captureOf();
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
      Object.defineProperty(globalThis, 'env', { value: f(${JSON.stringify(env ?? {})}), writable: false, configurable: false }); })()`,
    'env.js',
  );
  if (r.error) {
    const e = vm.dump(r.error);
    r.error.dispose();
    throw new Error(`cannot define env: ${JSON.stringify(e)}`);
  }
  r.value.dispose();
}

/** A thrown value as QuickJS dumps it: an error's name, message and stack, or the value itself. */
export type ThrownValue = { name?: string; message?: string; stack?: string } | string;

/**
 * The outcome of a run that threw `e`: a limit's code and text (QuickJS's own messages for them), or
 * the script's error with its line and column (`where`); what the run captured before it threw stays.
 */
export function failedRun(e: ThrownValue, limits: ScriptLimits, heapHit: boolean, cap: Capture, where: () => { line: number; column: number } | undefined): RunOutcome {
  const name = typeof e === 'object' && e ? (e.name ?? 'Error') : 'Error';
  const message = typeof e === 'object' && e ? (e.message ?? JSON.stringify(e)) : String(e);
  let code: ScriptErrorCode = 'script_error';
  let text: string;
  if (message === 'out of memory' || (message === 'interrupted' && heapHit)) {
    code = 'script_memory';
    text = `the script exceeded its memory limit of ${Math.round(limits.memoryBytes / 1048576)} MiB`;
  } else if (message === 'interrupted') {
    code = 'script_timeout';
    text = `the script ran longer than its ${limits.deadlineMs} ms deadline and was stopped`;
  } else if (message === 'stack overflow') {
    code = 'script_stack';
    text = 'the script overflowed its stack (too deep recursion)';
  } else {
    const at = where();
    text = `${name}: ${message}${at ? ` (line ${at.line}, column ${at.column})` : ''}`;
  }
  return { ok: false, error: { code, message: text }, logs: cap.logs, commands: cap.commands, alarms: cap.alarms, micros: 0 };
}
