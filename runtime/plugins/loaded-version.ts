/**
 * What replay and shadow mode (runtime/plugin-compare) use of the host: a tap on live decodes, and
 * stored versions loaded under keys of their own, decoded many frames per Promise.
 */
import type { Call, CallOutcome, WorkerPool } from './pool.ts';

/**
 * Watches live decodes of one plugin (shadow mode, runtime/plugin-compare): `take` is asked per
 * frame and answers a sample for the few frames it wants (none when its queue is full); the
 * sample hears the active version's output before anyone downstream changes it.
 */
export interface DecodeTap {
  take(deviceId: string | undefined, ts: number | undefined, msgId: string | undefined): DecodeSample | undefined;
}
export interface DecodeSample {
  seen(bytes: Uint8Array, output: unknown): void;
  failed(bytes: Uint8Array, cause: string, message: string): void;
}

/** A stored version loaded for comparison (replay, shadow): its calls count in no live metric. */
export interface LoadedVersion {
  readonly id: string;
  readonly version: number;
  decode(bytes: Uint8Array): Promise<CallOutcome>;
  /** Decodes many frames with one Promise and no closure per frame (a replay's chunk). */
  decodeMany(frames: readonly Uint8Array[]): Promise<CallOutcome[]>;
  /** unloads it from the workers once its queued calls answered */
  release(): void;
}

const NO_LOGS: string[] = [];

interface ManyChunk {
  outs: CallOutcome[];
  left: number;
  resolve: (outs: CallOutcome[]) => void;
}

/** One frame of `decodeMany`: writes its outcome into the chunk's slot and counts the chunk down. */
class ManyCall implements Call {
  readonly key: string;
  readonly op = 0 as const;
  readonly data: Uint8Array;
  readonly deadlineMs: number;
  readonly logs = false;
  attempts = 0;
  readonly #chunk: ManyChunk;
  readonly #i: number;
  constructor(key: string, deadlineMs: number, data: Uint8Array, chunk: ManyChunk, i: number) {
    this.key = key;
    this.deadlineMs = deadlineMs;
    this.data = data;
    this.#chunk = chunk;
    this.#i = i;
  }
  ok(value: unknown): void {
    this.#settle({ ok: true, value, logs: NO_LOGS });
  }
  fail(cause: string, message: string): void {
    this.#settle({ ok: false, cause, message, logs: NO_LOGS });
  }
  #settle(o: CallOutcome): void {
    const c = this.#chunk;
    c.outs[this.#i] = o;
    if (--c.left === 0) c.resolve(c.outs);
  }
}

/** The LoadedVersion of a module loaded into the pool under `key`. */
export function loadedVersion(p: WorkerPool, key: string, id: string, version: number, deadlineMs: number): LoadedVersion {
  let loaded = true;
  const released = (): CallOutcome => ({ ok: false, cause: 'released', message: 'the version was released', logs: NO_LOGS });
  return {
    id,
    version,
    decode: (data) => (loaded ? p.call(key, 0, data, deadlineMs) : Promise.resolve(released())),
    decodeMany(frames) {
      if (!loaded || frames.length === 0) return Promise.resolve(frames.map(released));
      return new Promise((resolve) => {
        const chunk: ManyChunk = { outs: new Array<CallOutcome>(frames.length), left: frames.length, resolve };
        for (let i = 0; i < frames.length; i++) p.submit(new ManyCall(key, deadlineMs, frames[i]!, chunk, i));
      });
    },
    release() {
      if (!loaded) return;
      loaded = false;
      p.unload(key);
    },
  };
}
