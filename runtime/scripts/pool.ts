/**
 * The script worker pool: runs scripts in worker threads (worker.ts), many runs per postMessage,
 * with every loaded script compiled in every worker. Three guards keep a hostile script from
 * hurting anything but itself:
 * - a watchdog terminates a worker whose current run passed the hard wall-clock limit (QuickJS
 *   checks its deadline only every few thousand operations, and one operation can be slow); that
 *   run fails with `script_timeout`, the rest of its batch runs again on the replacement;
 * - a worker whose Wasm heap grew past `recycleGrowthBytes` since its scripts were loaded is
 *   replaced once its batches are answered: Wasm memory never shrinks, a thread's exit frees it;
 * - a script whose runs hit a limit `quarantineAfter` times in a row is not run again (its runs
 *   answer `script_quarantined` at once) until it is loaded again under a new key.
 * Lazy: no worker thread exists before the first script is loaded.
 */
import { Dispatcher, Watchdog, spawnSlot, type BatchLimits, type WorkerSlot } from '../worker-pool/index.ts';
import type { RunOutcome, ScriptLimits, ScriptMessage } from './contract.ts';

export type ToWorker =
  | { t: 'load'; key: string; source: string; env: Record<string, unknown>; limits: ScriptLimits }
  | { t: 'unload'; key: string }
  /** `msgs`: JSON array of messages; `runs`: u32 pairs (message index, key index) */
  | { t: 'batch'; bid: number; keys: string[]; msgs: string; runs: ArrayBuffer };

export interface ScriptPoolOptions extends BatchLimits {
  workers: number;
  /** maximum of each worker's Wasm heap (every script in it together) */
  heapMaxBytes: number;
  /** a worker whose heap grew this much past its loaded scripts is replaced */
  recycleGrowthBytes: number;
  /** a run still going after this much wall-clock time gets its worker terminated */
  hardLimitMs: number;
  quarantineAfter: number;
  watchdogMs: number;
  /** QuickJS's compiled Wasm, shared with the workers (else each compiles its own) */
  wasmModule?: WebAssembly.Module;
  /** a worker was terminated or replaced (reason), for logs and counters */
  onRestart?(info: { reason: string; key?: string }): void;
}

export const DEFAULT_POOL_OPTIONS: ScriptPoolOptions = {
  workers: 1,
  heapMaxBytes: 256 * 1024 * 1024,
  recycleGrowthBytes: 32 * 1024 * 1024,
  hardLimitMs: 100,
  quarantineAfter: 3,
  maxBatch: 1024,
  maxInFlight: 2,
  pipelineMin: 64,
  watchdogMs: 20,
};

interface Req {
  key: string;
  msg: ScriptMessage;
  /** worker crashes this run was in flight for */
  attempts: number;
  done(o: RunOutcome): void;
}

/**
 * A worker of this pool. `ready`: it has loaded QuickJS and answered 'ready'; `retiring`: replaced
 * after growing, it gets no new batch and is terminated once its batches are answered.
 */
type Slot = WorkerSlot<Req> & { ready: boolean; retiring: boolean };

const WORKER_URL = new URL('./worker.ts', import.meta.url);
let spawned = 0;

const LIMIT_CODES = new Set(['script_timeout', 'script_memory', 'script_stack']);
const MAX_BOOT_FAILURES = 3;

function failure(code: string, message: string): RunOutcome {
  return { ok: false, error: { code: code as never, message }, logs: null, commands: null, alarms: null, micros: 0 };
}

export class ScriptPool {
  readonly #opts: ScriptPoolOptions;
  #slots: Slot[] = [];
  readonly #retiring = new Set<Slot>();
  readonly #scripts = new Map<string, { source: string; env: Record<string, unknown>; limits: ScriptLimits }>();
  /** runs in a row per script that hit a limit (quarantine) */
  readonly #hits = new Map<string, number>();
  /** runs queued or in flight per script; an unloaded script leaves the workers when it reaches 0 */
  readonly #inUse = new Map<string, number>();
  readonly #unloadWhenIdle = new Set<string>();
  readonly #queue: Dispatcher<Req, Slot>;
  readonly #watchdog: Watchdog<Slot>;
  #stopped = false;
  /** workers in a row that died before they were ready; past MAX_BOOT_FAILURES the pool gives up */
  #bootFailures = 0;
  #broken: string | undefined;
  restarts = 0;
  recycles = 0;

  constructor(opts: Partial<ScriptPoolOptions> = {}) {
    this.#opts = { ...DEFAULT_POOL_OPTIONS, ...opts };
    this.#queue = new Dispatcher({ limits: this.#opts, slots: () => this.#slots, send: (slot, reqs) => this.#send(slot, reqs) });
    this.#watchdog = new Watchdog<Slot>({
      periodMs: this.#opts.watchdogMs,
      slots: () => [...this.#slots, ...this.#retiring],
      busy: (slot) => slot.inflight.size > 0,
      limitMs: () => this.#opts.hardLimitMs,
      // index -1: a batch run in one call (worker.ts), no single run to blame
      expired: (slot, bid, index, limit) => this.#replace(slot, `a run passed the ${limit} ms hard limit`, index >= 0 ? slot.inflight.get(bid)?.[index] : undefined),
    });
  }

  get options(): Readonly<ScriptPoolOptions> {
    return this.#opts;
  }

  /** Worker threads now (0 until the first run). */
  get workers(): number {
    return this.#slots.length;
  }

  #spawn(): Slot {
    const slot = spawnSlot<Req, { ready: boolean; retiring: boolean }>({
      url: WORKER_URL,
      // distinct among this process's script workers
      name: `flux-script-${spawned++ % 1000}`,
      workerData: { heapMaxBytes: this.#opts.heapMaxBytes, quarantineAfter: this.#opts.quarantineAfter, wasmModule: this.#opts.wasmModule },
      extra: { ready: false, retiring: false },
      onMessage: (s, m: string) => this.#onMessage(s, m),
      onLost: (s, reason) => this.#replace(s, reason),
    });
    for (const [key, s] of this.#scripts) slot.worker.postMessage({ t: 'load', key, ...s } satisfies ToWorker);
    return slot;
  }

  /**
   * Makes `key` runnable in every worker, current and future. The first load starts the workers:
   * loading QuickJS in them overlaps with whatever comes before the first message.
   */
  load(key: string, source: string, env: Record<string, unknown>, limits: ScriptLimits): void {
    this.#unloadWhenIdle.delete(key);
    if (this.#scripts.has(key)) return;
    this.#scripts.set(key, { source, env, limits });
    for (const s of this.#slots) s.worker.postMessage({ t: 'load', key, source, env, limits } satisfies ToWorker);
    this.#ensureWorkers();
  }

  #ensureWorkers(): void {
    if (this.#slots.length || this.#stopped || this.#broken) return;
    for (let i = 0; i < this.#opts.workers; i++) this.#slots.push(this.#spawn());
  }

  /** Drops `key` from the workers once none of its runs is queued or in flight. */
  unload(key: string): void {
    if (!this.#scripts.has(key)) return;
    if ((this.#inUse.get(key) ?? 0) > 0) {
      this.#unloadWhenIdle.add(key);
      return;
    }
    this.#scripts.delete(key);
    this.#hits.delete(key);
    for (const s of this.#slots) s.worker.postMessage({ t: 'unload', key } satisfies ToWorker);
    for (const s of this.#retiring) s.worker.postMessage({ t: 'unload', key } satisfies ToWorker);
  }

  /** True when `key`'s runs hit a limit `quarantineAfter` times in a row. */
  quarantined(key: string): boolean {
    return (this.#hits.get(key) ?? 0) >= this.#opts.quarantineAfter;
  }

  run(key: string, msg: ScriptMessage): Promise<RunOutcome> {
    return new Promise((done) => this.submit(key, msg, done));
  }

  /** Queues a run; `done` is called once with its outcome (never throws, never rejects). */
  submit(key: string, msg: ScriptMessage, done: (o: RunOutcome) => void): void {
    if (this.#stopped) return done(failure('script_error', 'the script host is stopped'));
    if (this.#broken) return done(failure('script_error', this.#broken));
    if (!this.#scripts.has(key)) return done(failure('script_error', 'the script is not loaded'));
    if (this.quarantined(key)) return done(failure('script_quarantined', `skipped: the script hit its limits ${this.#hits.get(key)} times in a row`));
    this.#ensureWorkers();
    this.#inUse.set(key, (this.#inUse.get(key) ?? 0) + 1);
    // Sent at the end of this event-loop turn: the runs of one turn's messages share a batch.
    this.#queue.push({ key, msg, attempts: 0, done });
  }

  #send(slot: Slot, reqs: Req[]): void {
    const bid = this.#queue.nextBatchId();
    const keys: string[] = [];
    const msgs: ScriptMessage[] = [];
    const runs = new Uint32Array(reqs.length * 2);
    let lastMsg: ScriptMessage | undefined;
    let lastKey = '';
    let k = -1;
    for (let i = 0; i < reqs.length; i++) {
      const r = reqs[i]!;
      // The rules of one message share its object: sent once.
      if (r.msg !== lastMsg) {
        lastMsg = r.msg;
        msgs.push(r.msg);
      }
      if (r.key !== lastKey) {
        lastKey = r.key;
        k = keys.indexOf(r.key);
        if (k < 0) k = keys.push(r.key) - 1;
      }
      runs[2 * i] = msgs.length - 1;
      runs[2 * i + 1] = k;
    }
    let text: string;
    try {
      text = JSON.stringify(msgs);
    } catch (err) {
      // A message nested too deep for JSON.stringify (one that skipped the 64-level input limit):
      // its runs fail alone; thrown here, in the dispatcher's setImmediate, it ended the process.
      const ok = reqs.filter((r) => this.#serialisable(r, err as Error));
      if (ok.length) this.#send(slot, ok);
      return;
    }
    slot.inflight.set(bid, reqs);
    slot.worker.postMessage({ t: 'batch', bid, keys, msgs: text, runs: runs.buffer } satisfies ToWorker, [runs.buffer]);
    this.#watchdog.arm();
  }

  /** False (the run failed with the reason) when the run's message cannot be sent to a worker. */
  #serialisable(r: Req, err: Error): boolean {
    try {
      JSON.stringify(r.msg);
      return true;
    } catch {
      this.#finish(r, failure('script_error', `the message cannot be sent to the script worker: ${err.message}`));
      return false;
    }
  }

  #finish(r: Req, o: RunOutcome): void {
    const code = o.error?.code;
    if (o.ok || code === 'script_error' || code === 'script_syntax') this.#hits.delete(r.key);
    else if (code && LIMIT_CODES.has(code)) this.#hits.set(r.key, (this.#hits.get(r.key) ?? 0) + 1);
    const n = (this.#inUse.get(r.key) ?? 1) - 1;
    if (n > 0) this.#inUse.set(r.key, n);
    else {
      this.#inUse.delete(r.key);
      if (this.#unloadWhenIdle.delete(r.key)) this.unload(r.key);
    }
    r.done(o);
  }

  #onMessage(slot: Slot, m: string): void {
    if (m === 'ready') {
      slot.ready = true;
      this.#bootFailures = 0;
      return;
    }
    const values = JSON.parse(m) as unknown[];
    const bid = values[0] as number;
    const reqs = slot.inflight.get(bid);
    if (!reqs) return;
    slot.inflight.delete(bid);
    const grown = values[1] as number;
    if (grown > this.#opts.recycleGrowthBytes && !slot.retiring) this.#recycle(slot);
    if (slot.retiring && slot.inflight.size === 0) this.#retire(slot);
    if (this.#queue.pending.length) this.#queue.flush();
    for (let i = 0; i < reqs.length; i++) {
      const v = values[i + 2];
      if (Array.isArray(v)) this.#finish(reqs[i]!, { ok: true, result: v[1], logs: null, commands: null, alarms: null, micros: v[0] as number });
      else this.#finish(reqs[i]!, v as RunOutcome);
    }
  }

  /** Replaces a worker that grew: a fresh one takes its place now, the old one ends after its batches. */
  #recycle(slot: Slot): void {
    const i = this.#slots.indexOf(slot);
    if (i < 0) return;
    slot.retiring = true;
    this.#retiring.add(slot);
    this.#slots[i] = this.#spawn();
    this.recycles++;
    this.#opts.onRestart?.({ reason: 'recycled: its Wasm heap grew' });
  }

  #retire(slot: Slot): void {
    this.#retiring.delete(slot);
    slot.dead = true;
    void slot.worker.terminate();
  }

  /** Terminates a worker: its stuck run fails, every other run it held is queued again in front. */
  #replace(slot: Slot, reason: string, stuck?: Req): void {
    if (slot.dead || this.#stopped) return;
    slot.dead = true;
    void slot.worker.terminate();
    this.restarts++;
    this.#opts.onRestart?.({ reason, key: stuck?.key });
    if (!slot.ready && ++this.#bootFailures >= MAX_BOOT_FAILURES) {
      // A worker that cannot even start (QuickJS not loadable): stop respawning, answer every run.
      this.#broken = `the script worker cannot start (${reason})`;
      const all = this.#queue.takeAll([...this.#slots, ...this.#retiring]);
      for (const s of [...this.#slots, ...this.#retiring]) {
        if (s.dead) continue;
        s.dead = true;
        void s.worker.terminate();
      }
      this.#slots = [];
      this.#retiring.clear();
      for (const r of all) this.#finish(r, failure('script_error', this.#broken));
      return;
    }
    if (slot.retiring) this.#retiring.delete(slot);
    else {
      const i = this.#slots.indexOf(slot);
      if (i >= 0) this.#slots[i] = this.#spawn();
    }
    const again: Req[] = [];
    for (const reqs of slot.inflight.values()) {
      for (const r of reqs) {
        if (r === stuck) this.#finish(r, failure('script_timeout', `the script ran past the ${this.#opts.hardLimitMs} ms hard limit and its worker was terminated`));
        else if (++r.attempts >= 3) this.#finish(r, failure('script_error', `the worker running this script crashed repeatedly (${reason})`));
        else if (this.quarantined(r.key)) this.#finish(r, failure('script_quarantined', `skipped: the script hit its limits ${this.#hits.get(r.key)} times in a row`));
        else again.push(r);
      }
    }
    slot.inflight.clear();
    this.#queue.requeue(again);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#watchdog.stop();
    const slots = [...this.#slots, ...this.#retiring];
    for (const r of this.#queue.takeAll(slots)) r.done(failure('script_error', 'the script host stopped'));
    this.#slots = [];
    this.#retiring.clear();
    await Promise.all(slots.map((s) => ((s.dead = true), s.worker.terminate())));
  }
}
