/**
 * Comparing two decodes of one frame: outputs are equal when their JSON is, with object keys in
 * any order (a rebuilt plugin may write them in another order). A candidate that fails is `failed`
 * whatever the active version did; one that succeeds where the active version failed is `different`.
 */
import type { CallOutcome } from '../plugins/index.ts';

export type Verdict = 'same' | 'different' | 'failed';

/** What a diff shows of one side: the plugin's output as it answered, or its error. */
export type Side = { output: unknown } | { error: { cause: string; message: string } };

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

/** JSON with object keys sorted: two outputs are the same when these strings are. */
export function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o).sort();
  let s = '{';
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    if (o[k] === undefined) continue;
    if (s.length > 1) s += ',';
    s += JSON.stringify(k) + ':' + canonical(o[k]);
  }
  return s + '}';
}

/** One side as compared: the canonical output, or the failure. */
export type Decoded = { ok: true; text: string } | { ok: false; cause: string; message: string };

export function decodedOf(o: CallOutcome): Decoded {
  return o.ok ? { ok: true, text: canonical(o.value) } : { ok: false, cause: o.cause, message: o.message };
}

export function verdict(before: Decoded, after: Decoded): Verdict {
  if (!after.ok) return 'failed';
  return before.ok && before.text === after.text ? 'same' : 'different';
}

export function sideOf(d: Decoded): Side {
  return d.ok ? { output: JSON.parse(d.text) as unknown } : { error: { cause: d.cause, message: d.message.slice(0, 500) } };
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
