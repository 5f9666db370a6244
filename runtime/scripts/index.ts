/**
 * @module scripts — the script host (ARCHITECTURE §6): user scripts in QuickJS sandboxes with only
 * `msg`, `env`, `print`, `log_info`, `log_warn`, `send_command` and `raise_alarm`; a deadline and
 * a memory cap per run; compiled once per version, re-run with callFunction. Script API: docs/scripts.md.
 */
import type { QuickJSWASMModule } from 'quickjs-emscripten';
import { CompiledScript, DEFAULT_LIMITS, type ScriptLimits } from './sandbox.ts';

export {
  CompiledScript,
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
} from './sandbox.ts';
export { translateScript } from './translate.ts';

export interface ScriptHost {
  readonly limits: ScriptLimits;
  /** Compiles `source` (throws ScriptSyntaxError with line/column). The caller disposes the script. */
  compile(source: string, env?: Record<string, unknown>, limits?: Partial<ScriptLimits>): CompiledScript;
  /** Compiles and disposes: a syntax check. */
  check(source: string): void;
}

/**
 * Loads the QuickJS Wasm module once (shared by every script; each script has its own runtime).
 * The package itself is imported here, not at the top: a process that never compiles a script
 * never loads it (~9 MB of RSS; runtime/rules creates the host on first need).
 */
export async function createScriptHost(limits: Partial<ScriptLimits> = {}): Promise<ScriptHost> {
  const { getQuickJS } = await import('quickjs-emscripten');
  const module: QuickJSWASMModule = await getQuickJS();
  const base: ScriptLimits = { ...DEFAULT_LIMITS, ...limits };
  return {
    limits: base,
    compile(source, env = {}, over = {}) {
      return new CompiledScript(module, source, env, { ...base, ...over });
    },
    check(source) {
      new CompiledScript(module, source, {}, base).dispose();
    },
  };
}
