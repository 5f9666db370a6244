/**
 * @module scripts — the script host (docs/scripts.md): user scripts in QuickJS sandboxes with only
 * `msg`, `env`, `print`, `log_info`, `log_warn`, `send_command` and `raise_alarm`; a deadline and
 * a memory cap per run; compiled once per version, re-run with callFunction. Script API: docs/scripts.md.
 *
 * Scripts run in worker threads (pool.ts), never on the main event loop: `load` checks a script
 * here (compiling does not run it) and hands it to the pool; `compile` is the in-thread sandbox,
 * for checks and the sandbox's own tests.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { QuickJSWASMModule } from 'quickjs-emscripten';
import { CompiledScript } from './sandbox.ts';
import { DEFAULT_LIMITS, type ScriptLimits, type ScriptMessage, type RunOutcome } from './contract.ts';
import { ScriptPool, type ScriptPoolOptions } from './pool.ts';

export { CompiledScript } from './sandbox.ts';
export {
  ScriptSyntaxError,
  DEFAULT_LIMITS,
  ALARM_LEVELS,
  type ScriptLimits,
  type ScriptMessage,
  type RunOutcome,
  type LogEntry,
  type CommandRequest,
  type AlarmRequest,
  type AlarmLevel,
  type ScriptErrorCode,
} from './contract.ts';
export { translateScript } from './translate.ts';
export { ScriptPool, DEFAULT_POOL_OPTIONS, type ScriptPoolOptions } from './pool.ts';

/** A script loaded into the worker pool. */
export interface PooledScript {
  readonly source: string;
  /** Never rejects: what the script did, or why it did not run. */
  run(msg: ScriptMessage): Promise<RunOutcome>;
  /** Queues a run without a promise (the hot path). */
  submit(msg: ScriptMessage, done: (o: RunOutcome) => void): void;
  /** Its runs hit a limit repeatedly: the pool skips it (answers `script_quarantined`). */
  readonly quarantined: boolean;
  dispose(): void;
}

export interface ScriptHost {
  readonly limits: ScriptLimits;
  /** Compiles `source` (throws ScriptSyntaxError with line/column). The caller disposes the script. */
  compile(source: string, env?: Record<string, unknown>, limits?: Partial<ScriptLimits>): CompiledScript;
  /** Compiles and disposes: a syntax check. */
  check(source: string): void;
  /** Checks `source` (throws ScriptSyntaxError) and loads it into the worker pool. The caller disposes it. */
  load(source: string, env?: Record<string, unknown>): PooledScript;
  readonly pool: ScriptPool;
  /** Terminates the workers; runs still queued answer an error. */
  stop(): Promise<void>;
}

/**
 * Loads the QuickJS Wasm module once (shared by every script; each script has its own runtime).
 * The package itself is imported here, not at the top: a process that never compiles a script
 * never loads it (~9 MB of RSS; runtime/rules creates the host on first need).
 */
export async function createScriptHost(limits: Partial<ScriptLimits> = {}, poolOptions: Partial<ScriptPoolOptions> = {}): Promise<ScriptHost> {
  const { newQuickJSWASMModule, newVariant, RELEASE_SYNC } = await import('quickjs-emscripten');
  // Compiled once here and shared with the script workers (a compiled module crosses threads
  // without compiling again): each compile of QuickJS's 0.5 MB of Wasm costs CPU on V8's shared
  // background threads, which the plugin workers need at the same moment.
  const wasmModule = await WebAssembly.compile(fs.readFileSync(createRequire(import.meta.url).resolve('@jitl/quickjs-wasmfile-release-sync/wasm')));
  const module: QuickJSWASMModule = await newQuickJSWASMModule(newVariant(RELEASE_SYNC, { wasmModule }));
  const base: ScriptLimits = { ...DEFAULT_LIMITS, ...limits };
  // The hard limit stays well above the deadline QuickJS enforces itself.
  const pool = new ScriptPool({ hardLimitMs: Math.max(100, base.deadlineMs * 5), ...poolOptions, wasmModule });
  let seq = 0;
  return {
    limits: base,
    pool,
    load(source, env = {}) {
      new CompiledScript(module, source, env, base).dispose();
      const key = `s${++seq}`;
      pool.load(key, source, env, base);
      return {
        source,
        run: (msg) => pool.run(key, msg),
        submit: (msg, done) => pool.submit(key, msg, done),
        get quarantined() {
          return pool.quarantined(key);
        },
        dispose: () => pool.unload(key),
      };
    },
    stop: () => pool.stop(),
    compile(source, env = {}, over = {}) {
      return new CompiledScript(module, source, env, { ...base, ...over });
    },
    check(source) {
      new CompiledScript(module, source, {}, base).dispose();
    },
  };
}
