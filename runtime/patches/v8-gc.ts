/**
 * Fenced patch: a `gc()` borrowed from V8. Node offers no GC call without --expose-gc, so gc() comes
 * from a context created while the flag is briefly on: no other context (not the main one, not
 * Node-RED's function nodes) ever sees it. runtime/memory uses it for the full collections it makes
 * at moments the heap is mostly garbage. `v8GcShape()` checks it (test/patches/upstream-shape.test.ts).
 */
import v8 from 'node:v8';
import vm from 'node:vm';

export type GcOptions = { type: 'major' | 'minor'; execution: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' };
export type Gc = (options: GcOptions) => void | Promise<void>;

/** Borrowed once per process (a V8 flag is process-wide); null when this V8 offers none. */
let gcFn: Gc | null | undefined;

export function borrowedGc(): Gc | null {
  if (gcFn !== undefined) return gcFn;
  v8.setFlagsFromString('--expose-gc');
  try {
    const gc = vm.runInNewContext('typeof gc === "function" ? gc : null') as Gc | null;
    gcFn = gc;
  } catch {
    gcFn = null;
  } finally {
    v8.setFlagsFromString('--no-expose-gc');
  }
  return gcFn;
}

/** What the borrowing needs and this Node does not offer (empty: all there). */
export function v8GcShape(): string[] {
  const gc = borrowedGc();
  if (!gc) return ['no gc() in a context created under --expose-gc'];
  if (vm.runInNewContext('typeof gc') !== 'undefined') return ['gc() leaked into later contexts (--no-expose-gc had no effect)'];
  if (typeof (globalThis as { gc?: unknown }).gc !== 'undefined' && !process.execArgv.includes('--expose-gc')) return ['gc() leaked into the main context'];
  return [];
}
