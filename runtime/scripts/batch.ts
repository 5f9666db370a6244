/**
 * What running a script over many messages in one call into QuickJS is made of (sandbox.ts
 * `runMany`, docs/scripts.md "Many messages in one call"): when a batch may run, the driver that
 * runs it inside the script's runtime, and the check of what the driver answers.
 */
import type { Capture } from './globals.ts';

/** Runs timed one by one before a script may run batches (what a run costs decides whether a batch fits). */
export const LEARN_RUNS = 64;
/** Highest run index of a batch (far above what fits a deadline). */
export const MAX_BATCH_INDEX = 1 << 20;
export const NOTHING_CAPTURED: Readonly<Capture> = Object.freeze({ logs: null, commands: null, alarms: null });
/** A batch is run only when its expected time is at most this share of one run's deadline. */
export const BATCH_SHARE = 0.25;
/**
 * The batch driver, evaluated once per runtime before any user code runs (so the builtins it holds
 * are the real ones, whatever a script later does to the globals): runs the user's function over the
 * messages of one JSON text in one call into the Wasm module. Primitive results are answered in the
 * JSON; an object, a bigint or a thrown value stays in `keep` for the host to read exactly as a single
 * run's answer is read. An InternalError (out of memory, stack overflow) ends the batch at that run.
 * `at.i` is the run in progress, for the host to file what a side-effect global captures under it
 * (`at` is reachable from no script: only the driver and the host hold it).
 */
export const DRIVER = `(function (fn, at) { const parse = JSON.parse, stringify = JSON.stringify, Internal = InternalError; return function (text, keep) {
  const ms = parse(text); const n = ms.length; const out = []; const special = []; let stop = -1;
  for (let i = 0; i < n; i++) {
    let r;
    at.i = i;
    try { r = fn(ms[i]); } catch (e) { keep[i] = e; out[i] = null; special[special.length] = -1 - i; if (e instanceof Internal) { stop = i; break; } continue; }
    const t = typeof r;
    if (t === 'object' && r !== null || t === 'bigint') { keep[i] = r; special[special.length] = i; out[i] = null; }
    else out[i] = t === 'function' || t === 'symbol' || r === undefined ? null : r;
  }
  return stringify([out, special, stop]);
}; })`;

/** The driver's answer, checked: a script can reach the objects it is made of, so nothing in it is trusted. */
export function driverAnswer(text: string, count: number): { results: unknown[]; special: number[]; ran: number } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v) || v.length !== 3) return undefined;
  const [results, special, stop] = v as [unknown, unknown, unknown];
  if (!Array.isArray(results) || !Array.isArray(special) || !Number.isInteger(stop)) return undefined;
  const ran = (stop as number) < 0 ? count : (stop as number) + 1;
  if (ran > count || results.length !== ran) return undefined;
  for (const k of special) if (!Number.isInteger(k) || (k as number) >= ran || -1 - (k as number) >= ran) return undefined;
  return { results, special: special as number[], ran };
}
