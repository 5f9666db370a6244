/**
 * What a rule script gets and answers (docs/scripts.md): its limits, the `msg` it sees, the logs,
 * commands and alarms it asks for, the outcome of a run and its error codes. Shared by the
 * sandbox (sandbox.ts), the worker that runs it (worker.ts), the pool (pool.ts) and the rule engine.
 */
import type { AlarmLevel } from '../api-shapes/index.ts';

export interface ScriptLimits {
  /** per run (docs/scripts.md); default 20 */
  deadlineMs: number;
  /** QuickJS malloc limit per script runtime; default 16 MiB */
  memoryBytes: number;
  /** QuickJS stack cap. Past ~256 KiB the Wasm frames overflow V8's own stack first, which kills the module, so it stays well below. */
  stackBytes: number;
}

export const DEFAULT_LIMITS: ScriptLimits = { deadlineMs: 20, memoryBytes: 16 * 1024 * 1024, stackBytes: 128 * 1024 };

export type { AlarmLevel };
/** what `raise_alarm` accepts (the alarm center's levels; a list here so the worker needs no server module) */
export const ALARM_LEVELS: readonly AlarmLevel[] = ['info', 'warning', 'critical'];

/** What a script sees as `msg` (the StandardMessage plus its product key). */
export interface ScriptMessage {
  device_id: string;
  values: Record<string, unknown>;
  ts?: number;
  product?: string;
  [k: string]: unknown;
}

export interface LogEntry {
  level: 'print' | 'info' | 'warn';
  message: string;
}
export interface CommandRequest {
  device_id: string;
  command: string;
  params: Record<string, unknown>;
}
export interface AlarmRequest {
  level: AlarmLevel;
  message: string;
}

/** `script_quarantined`: not run, the script hit its limits repeatedly (runtime/scripts/pool.ts). */
export type ScriptErrorCode = 'script_syntax' | 'script_timeout' | 'script_memory' | 'script_stack' | 'script_error' | 'script_quarantined';

export interface RunOutcome {
  ok: boolean;
  /** what the script returned (JSON-able), when ok */
  result?: unknown;
  error?: { code: ScriptErrorCode; message: string };
  /** null when nothing was logged/sent/raised (no allocation on the common path) */
  logs: LogEntry[] | null;
  commands: CommandRequest[] | null;
  alarms: AlarmRequest[] | null;
  micros: number;
}

/** A syntax error with the user's line and column (1-based). */
export class ScriptSyntaxError extends Error {
  readonly code = 'script_syntax';
  readonly line: number;
  readonly column: number;
  readonly reason: string;
  constructor(reason: string, line: number, column: number) {
    super(`syntax error at line ${line}, column ${column}: ${reason}`);
    this.name = 'ScriptSyntaxError';
    this.reason = reason;
    this.line = line;
    this.column = column;
  }
}
