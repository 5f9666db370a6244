/**
 * Comparing two decodes of one frame: outputs are equal when their JSON is, with object keys in
 * any order (JSON.parse output: no undefined, no cycles) (a rebuilt plugin may write them in another order). A candidate that fails is `failed`
 * whatever the active version did; one that succeeds where the active version failed is `different`.
 */
import type { CallOutcome } from '../plugins/index.ts';

export type Verdict = 'same' | 'different' | 'failed';

/** What a diff shows of one side: the plugin's output as it answered, or its error. */
export type Side = { output: unknown } | { output_preview: string; bytes: number } | { error: { cause: string; message: string } };

/** An output larger than this as JSON is kept as its first bytes (a plugin may answer up to 4 MiB; diffs are kept in memory). */
export const SIDE_MAX_CHARS = 8192;

export interface Diff {
  msgId: string | null;
  deviceId: string | null;
  ts: number | null;
  before: Side;
  after: Side;
}

export interface Counts {
  same: number;
  different: number;
  failed: number;
}

/** One side as compared: the output as the plugin answered it, or the failure. */
export type Decoded = { ok: true; value: unknown } | { ok: false; cause: string; message: string };

export function decodedOf(o: CallOutcome): Decoded {
  return o.ok ? { ok: true, value: o.value } : { ok: false, cause: o.cause, message: o.message };
}

/** Equal as JSON, object keys in any order; no string is built (a replay compares 100,000s a second). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ao = a as Record<string, unknown>, bo = b as Record<string, unknown>;
  let n = 0;
  for (const k in ao) {
    if (!Object.hasOwn(bo, k) || !sameJson(ao[k], bo[k])) return false;
    n++;
  }
  for (const _ in bo) n--;
  return n === 0;
}

export function verdict(before: Decoded, after: Decoded): Verdict {
  if (!after.ok) return 'failed';
  return before.ok && sameJson(before.value, after.value) ? 'same' : 'different';
}

export function sideOf(d: Decoded): Side {
  if (!d.ok) return { error: { cause: d.cause, message: d.message.slice(0, 500) } };
  const text = JSON.stringify(d.value) ?? 'null';
  return text.length <= SIDE_MAX_CHARS ? { output: d.value } : { output_preview: text.slice(0, SIDE_MAX_CHARS), bytes: Buffer.byteLength(text) };
}

/** The newest `max` diffs (a ring: the oldest goes when a new one comes). */
export class DiffRing {
  readonly max: number;
  #items: Diff[] = [];
  constructor(max: number) {
    this.max = max;
  }
  push(d: Diff): void {
    if (this.#items.length >= this.max) this.#items.shift();
    this.#items.push(d);
  }
  list(): Diff[] {
    return [...this.#items];
  }
}
