/**
 * The worker pool: batches calls to worker threads (many frames per postMessage), keeps every
 * loaded plugin version in every worker, and runs the watchdog that terminates a worker whose
 * current call passed its deadline (docs/plugin-abi.md) — that call fails, the rest of its batch is
 * re-run on the replacement, nothing is lost or answered twice.
 *
 * Lazy: an idle worker thread costs ~17 MB, so the pool starts with none. Loaded modules are kept
 * here on the main thread; the first call spawns the workers, each of which gets every loaded
 * module before its first batch (the path a replaced worker takes too). Probes run in a
 * short-lived worker of their own until the workers exist.
 */
import { Dispatcher, Watchdog, leastBusy, spawnSlot, type BatchLimits, type WorkerSlot } from '../worker-pool/index.ts';

export interface CallOk {
  ok: true;
  /** decode: the parsed output (a StandardMessage, an array of them) */
  value?: unknown;
  /** encode: the bytes */
  bytes?: Uint8Array;
  logs: string[];
}
export interface CallFailed {
  ok: false;
  /** deadline, trap, memory, out_of_bounds, invalid_utf8, invalid_json, invalid_message, plugin_error, unsupported, crashed… */
  cause: string;
  message: string;
  logs: string[];
}
export type CallOutcome = CallOk | CallFailed;

export interface ProbeResult {
  abi: number;
  meta: unknown;
  /** parameter count of each exported ABI function */
  params: Record<string, number>;
}

/**
 * One queued call: what to run and who hears the outcome. The pool calls exactly one of `ok` and
 * `fail`, once. The hot path (host.decode) passes one object per frame that is both: no closure or
 * outcome object per frame.
 */
export interface Call {
  key: string;
  op: 0 | 1;
  data: Uint8Array;
  deadlineMs: number;
  logs: boolean;
  /** worker crashes this call was in flight for (set by the pool; start at 0) */
  attempts: number;
  /** decode: the parsed output (a StandardMessage, an array of them); encode: the bytes */
  ok(value: unknown, bytes: Uint8Array | undefined, logs: string[]): void;
  fail(cause: string, message: string, logs: string[]): void;
}
type Req = Call;

interface Probe {
  pid: number;
  module: WebAssembly.Module;
  capBytes: number;
  deadlineMs: number;
  resolve(r: ProbeResult): void;
  reject(e: Error): void;
}

/** A worker of this pool; `probes`: instantiations asked of it and not answered yet. */
type Slot = WorkerSlot<Req> & { probes: Map<number, Probe> };

export interface PoolOptions extends BatchLimits {
  workers: number;
  /** watchdog period; a stuck call is cut off between its deadline and deadline + this */
  watchdogMs: number;
  onRestart?(info: { reason: string; key?: string }): void;
}

const WORKER_URL = new URL('./worker.ts', import.meta.url);

const NO_LOGS: string[] = Object.freeze([]) as unknown as string[];

export class WorkerPool {
  readonly #opts: PoolOptions;
  readonly #slots: Slot[] = [];
  readonly #modules = new Map<string, { id: string; module: WebAssembly.Module; capBytes: number }>();
  readonly #inUse = new Map<string, number>();
  readonly #unloadWhenIdle = new Set<string>();
  readonly #queue: Dispatcher<Req, Slot>;
  readonly #watchdog: Watchdog<Slot>;
  #pid = 0;
  #spawned = 0;
  #stopped = false;
  /** a worker only for probes, while the pool has no workers; terminated once its probes answered */
  #prober: Slot | undefined;
  restarts = 0;

  constructor(opts: PoolOptions) {
    this.#opts = opts;
    this.#queue = new Dispatcher({ limits: opts, slots: () => this.#slots, send: (slot, reqs) => this.#send(slot, reqs) });
    this.#watchdog = new Watchdog<Slot>({
      periodMs: opts.watchdogMs,
      slots: () => (this.#prober ? [...this.#slots, this.#prober] : [...this.#slots]),
      busy: (slot) => slot.inflight.size > 0 || slot.probes.size > 0,
      // bid < 0: a probe (the worker writes -pid)
      limitMs: (slot, bid, index) => (bid < 0 ? (slot.probes.get(-bid)?.deadlineMs ?? 1000) : (slot.inflight.get(bid)?.[index]?.deadlineMs ?? 1000)),
      expired: (slot, bid, index, deadline) => this.#kill(slot, bid, index, deadline),
    });
  }

  /** Spawns the workers on first use; each gets every loaded module before any batch (#spawn). */
  #ensureWorkers(): void {
    if (this.#slots.length || this.#stopped) return;
    for (let i = 0; i < this.#opts.workers; i++) this.#slots.push(this.#spawn());
  }

  #spawn(probeOnly = false): Slot {
    const slot = spawnSlot<Req, { probes: Map<number, Probe> }>({
      url: WORKER_URL,
      // distinct among this pool's workers
      name: `flux-plugin-${this.#spawned++ % 1000}`,
      workerData: {},
      extra: { probes: new Map() },
      onMessage: (s, m) => this.#onMessage(s, m),
      onLost: (s, reason) => this.#replace(s, reason),
    });
    if (!probeOnly) for (const [key, m] of this.#modules) slot.worker.postMessage({ t: 'load', key, id: m.id, module: m.module, capBytes: m.capBytes });
    return slot;
  }

  /** Worker threads running calls: 0 until the first call. */
  get workers(): number {
    return this.#slots.length;
  }

  get queued(): number {
    let n = this.#queue.pending.length;
    for (const s of this.#slots) for (const b of s.inflight.values()) n += b.length;
    return n;
  }

  /** Makes `key` callable in every worker (current and future). Posted before any batch that uses it. */
  load(key: string, id: string, module: WebAssembly.Module, capBytes: number): void {
    this.#unloadWhenIdle.delete(key);
    if (this.#modules.has(key)) return;
    this.#modules.set(key, { id, module, capBytes });
    for (const s of this.#slots) s.worker.postMessage({ t: 'load', key, id, module, capBytes });
  }

  /** Drops `key` from the workers once no queued call uses it any more. */
  unload(key: string): void {
    if (!this.#modules.has(key)) return;
    // Sent calls are counted in #inUse; pending ones are looked up here (rare: only on a swap).
    if ((this.#inUse.get(key) ?? 0) > 0 || this.#queue.pending.some((r) => r.key === key)) {
      this.#unloadWhenIdle.add(key);
      return;
    }
    this.#modules.delete(key);
    for (const s of this.#slots) s.worker.postMessage({ t: 'unload', key });
  }

  isLoaded(key: string): boolean {
    return this.#modules.has(key);
  }

  call(key: string, op: 0 | 1, data: Uint8Array, deadlineMs: number, logs = false): Promise<CallOutcome> {
    return new Promise((resolve) =>
      this.submit({
        key,
        op,
        data,
        deadlineMs,
        logs,
        attempts: 0,
        ok: (value, bytes, l) => resolve({ ok: true, value, bytes, logs: l }),
        fail: (cause, message, l) => resolve({ ok: false, cause, message, logs: l }),
      }),
    );
  }

  /** Queues a call; its outcome goes to `c.ok` or `c.fail`. */
  submit(c: Call): void {
    if (this.#stopped) return c.fail('stopped', 'the plugin host is stopped', NO_LOGS);
    if (!this.#slots.length) this.#ensureWorkers();
    // Sent at the end of this event-loop turn with the turn's other frames (~5% less CPU per
    // message at 20k msg/s than a microtask flush); while the workers are busy, frames keep
    // coalescing until a batch comes back (#onMessage flushes).
    this.#queue.push(c);
  }

  /**
   * Instantiates a module in a worker and reads its ABI version and meta (never on the main thread:
   * a start function could loop). Before the first call that is a short-lived probe worker, so an
   * upload does not keep a pool thread alive.
   */
  probe(module: WebAssembly.Module, capBytes: number, deadlineMs: number): Promise<ProbeResult> {
    return new Promise((resolve, reject) => {
      if (this.#stopped) return reject(new Error('the plugin host stopped'));
      const p: Probe = { pid: ++this.#pid, module, capBytes, deadlineMs, resolve, reject };
      const slot = this.#slots.length ? leastBusy(this.#slots) : (this.#prober ??= this.#spawn(true));
      slot.probes.set(p.pid, p);
      slot.worker.postMessage({ t: 'probe', pid: p.pid, module, capBytes });
      this.#watchdog.arm();
    });
  }

  /**
   * One transferable buffer per batch: `[n, offsets[0..n], (keyIndex << 1 | op)[0..n-1]]` as u32,
   * then the frames' bytes back to back (offsets are relative to where the bytes start).
   */
  #send(slot: Slot, reqs: Req[]): void {
    const bid = this.#queue.nextBatchId();
    const n = reqs.length;
    const head = 2 + 2 * n;
    let total = 0;
    for (let i = 0; i < n; i++) total += reqs[i]!.data.length;
    const buf = new ArrayBuffer(head * 4 + total);
    const u32 = new Uint32Array(buf, 0, head);
    const bytes = new Uint8Array(buf, head * 4);
    const keys: string[] = [];
    let logs = false;
    let lastKey = '';
    let k = -1;
    let at = 0;
    let runStart = 0;
    u32[0] = n;
    for (let i = 0; i < n; i++) {
      const r = reqs[i]!;
      if (r.key !== lastKey) {
        if (k >= 0) this.#hold(lastKey, i - runStart);
        lastKey = r.key;
        runStart = i;
        k = keys.indexOf(r.key);
        if (k < 0) k = keys.push(r.key) - 1;
      }
      u32[1 + i] = at;
      u32[2 + n + i] = (k << 1) | r.op;
      bytes.set(r.data, at);
      at += r.data.length;
      if (r.logs) logs = true;
    }
    u32[1 + n] = at;
    this.#hold(lastKey, n - runStart);
    slot.inflight.set(bid, reqs);
    slot.worker.postMessage({ t: 'batch', bid, keys, buf, logs }, [buf]);
    this.#watchdog.arm();
  }

  /** Counts calls of `key` sent to a worker and not answered yet (counted per run of a batch, not per frame). */
  #hold(key: string, count: number): void {
    this.#inUse.set(key, (this.#inUse.get(key) ?? 0) + count);
  }

  #release(key: string, count = 1): void {
    const n = (this.#inUse.get(key) ?? count) - count;
    if (n > 0) this.#inUse.set(key, n);
    else {
      this.#inUse.delete(key);
      if (this.#unloadWhenIdle.delete(key)) this.unload(key);
    }
  }

  #onMessage(slot: Slot, m: any): void {
    // The common answer is one JSON array string, `[bid, out0, out1, …]`: no errors, encodes or logs.
    const fast = typeof m === 'string';
    if (fast || m.t === 'done') {
      const values = JSON.parse(fast ? m : m.json) as unknown[];
      const bid = values[0] as number;
      const reqs = slot.inflight.get(bid);
      if (!reqs) return;
      slot.inflight.delete(bid);
      // The worker is free again: give it the frames that waited before answering these.
      if (this.#queue.pending.length) this.#queue.flush();
      let failed: Map<number, [string, string]> | undefined;
      let bins: Map<number, Uint8Array> | undefined;
      let logs: (string[] | null)[] | null = null;
      if (!fast) {
        if (m.errors.length) {
          failed = new Map();
          for (const [i, cause, message] of m.errors as [number, string, string][]) failed.set(i, [cause, message]);
        }
        if (m.bins.length) bins = new Map<number, Uint8Array>(m.bins);
        logs = m.logs;
      }
      // Per-key release counted once per run, not per frame.
      let runKey = reqs[0]!.key;
      let run = 0;
      for (let i = 0; i < reqs.length; i++) {
        const r = reqs[i]!;
        if (r.key !== runKey) {
          this.#release(runKey, run);
          runKey = r.key;
          run = 0;
        }
        run++;
        if (fast) {
          r.ok(values[i + 1], undefined, NO_LOGS);
          continue;
        }
        const f = failed?.get(i);
        const l = logs?.[i] ?? NO_LOGS;
        if (f) r.fail(f[0], f[1], l);
        else r.ok(values[i + 1], bins?.get(i), l);
      }
      this.#release(runKey, run);
    } else if (m.t === 'probed') {
      const p = slot.probes.get(m.pid);
      if (!p) return;
      slot.probes.delete(m.pid);
      if (m.ok) p.resolve({ abi: m.abi, meta: m.meta, params: m.params });
      else p.reject(new Error(m.error));
      if (slot === this.#prober && slot.probes.size === 0) this.#retire(slot);
    }
  }

  /** Terminates the probe worker once it has nothing left to do. */
  #retire(slot: Slot): void {
    if (this.#prober === slot) this.#prober = undefined;
    slot.dead = true;
    void slot.worker.terminate();
  }

  /** Terminates a worker stuck in a call: that call fails with `deadline`, every other queued call runs again on the replacement. */
  #kill(slot: Slot, bid: number, index: number, deadline: number): void {
    let stuck: Req | undefined;
    if (bid < 0) {
      const p = slot.probes.get(-bid);
      slot.probes.delete(-bid);
      p?.reject(new Error(`the module did not finish instantiating within ${deadline} ms (a start function that loops?)`));
    } else {
      stuck = slot.inflight.get(bid)?.[index];
    }
    this.#replace(slot, `call passed its ${deadline} ms deadline`, stuck, deadline);
  }

  #replace(slot: Slot, reason: string, stuck?: Req, deadline?: number): void {
    if (slot.dead || this.#stopped) return;
    slot.dead = true;
    void slot.worker.terminate();
    this.restarts++;
    this.#opts.onRestart?.({ reason, key: stuck?.key });
    if (slot === this.#prober) {
      // The probe worker: its other probes go to a new one (or to the pool's workers, if they exist now).
      this.#prober = undefined;
      const left = [...slot.probes.values()];
      slot.probes.clear();
      for (const p of left) {
        const to = this.#slots.length ? leastBusy(this.#slots) : (this.#prober ??= this.#spawn(true));
        to.probes.set(p.pid, p);
        to.worker.postMessage({ t: 'probe', pid: p.pid, module: p.module, capBytes: p.capBytes });
      }
      return;
    }
    const i = this.#slots.indexOf(slot);
    const fresh = this.#spawn();
    if (i >= 0) this.#slots[i] = fresh;
    const again: Req[] = [];
    for (const reqs of slot.inflight.values()) {
      for (const r of reqs) {
        if (r === stuck) {
          this.#release(r.key);
          r.fail('deadline', `deadline exceeded: the call ran past ${deadline} ms and was stopped (worker restarted)`, NO_LOGS);
        } else if (++r.attempts >= 3) {
          // A call that was in flight during three crashes is the likely cause: stop retrying it.
          this.#release(r.key);
          r.fail('crashed', `the worker running this call crashed repeatedly (${reason})`, NO_LOGS);
        } else {
          again.push(r);
        }
      }
    }
    slot.inflight.clear();
    for (const p of slot.probes.values()) {
      fresh.probes.set(p.pid, p);
      fresh.worker.postMessage({ t: 'probe', pid: p.pid, module: p.module, capBytes: p.capBytes });
    }
    slot.probes.clear();
    // Re-queued in front, in their original order: they were sent before anything still pending.
    this.#queue.requeue(again);
    // No longer sent: counted again when they are (#send), looked up in the queue meanwhile.
    for (const r of again) this.#release(r.key);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#watchdog.stop();
    for (const r of this.#queue.takeAll(this.#slots)) r.fail('stopped', 'the plugin host stopped', NO_LOGS);
    const prober = this.#prober;
    this.#prober = undefined;
    const slots = prober ? [...this.#slots, prober] : this.#slots;
    for (const s of slots) for (const p of s.probes.values()) p.reject(new Error('the plugin host stopped'));
    await Promise.all(slots.map((s) => ((s.dead = true), s.worker.terminate())));
  }
}
