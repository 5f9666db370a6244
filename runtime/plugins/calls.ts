/**
 * Calls into the live plugin versions: decode (one Promise and one call object per frame: this runs
 * for every uplink), encode, try-before-deploy, and the pipeline's decode step with its JSON fallback
 * for products without a plugin. Every call binds to the version active when it is submitted.
 */
import crypto from 'node:crypto';
import { FluxError } from '../errors/index.ts';
import { checkJsonDepth } from '../input-limits/index.ts';
import type { Call, CallOutcome, WorkerPool } from './pool.ts';
import type { DecodeSample, DecodeTap } from './loaded-version.ts';
import { PluginCallError, type Active, type Decoded, type JsonDecoded, type PluginHost, type PluginLimits, type StandardMessage, type TryResult, type UplinkBytes } from './types.ts';

/** One executor for every decode promise (no closure per frame): it hands out the resolvers it was given. */
const captured: { resolve?: (v: unknown) => void; reject?: (e: Error) => void } = {};
const capture = (resolve: (v: unknown) => void, reject: (e: Error) => void): void => {
  captured.resolve = resolve;
  captured.reject = reject;
};

/**
 * A queued decode: the request and its promise's settlement in one object per frame. It answers
 * the plugin's output as it came (`host.decode`), or, `asDecoded`, as Decoded: the messages with
 * the plugin version, stamped with `ts` where they carry none (the pipeline's decodeFrame).
 */
class DecodeCall implements Call {
  readonly key: string;
  readonly op = 0 as const;
  readonly data: Uint8Array;
  readonly deadlineMs: number;
  readonly logs = false;
  attempts = 0;
  readonly #id: string;
  readonly #version: number;
  readonly #asDecoded: boolean;
  readonly #ts: number | undefined;
  readonly #count: { ok: number; failed: number };
  readonly #sample: DecodeSample | undefined;
  readonly #resolve: (v: unknown) => void;
  readonly #reject: (e: Error) => void;
  constructor(id: string, a: { key: string; version: number; deadlineMs: number }, data: Uint8Array, asDecoded: boolean, ts: number | undefined, count: { ok: number; failed: number }, sample?: DecodeSample) {
    this.key = a.key;
    this.data = data;
    this.deadlineMs = a.deadlineMs;
    this.#id = id;
    this.#version = a.version;
    this.#asDecoded = asDecoded;
    this.#ts = ts;
    this.#count = count;
    this.#sample = sample;
    this.#resolve = captured.resolve!;
    this.#reject = captured.reject!;
  }
  ok(value: unknown): void {
    this.#count.ok++;
    // before the messages are stamped below or changed downstream
    if (this.#sample) this.#sample.seen(this.data, value);
    if (!this.#asDecoded) return this.#resolve(value);
    const messages = (Array.isArray(value) ? value : [value]) as StandardMessage[];
    const ts = this.#ts;
    if (ts !== undefined) for (const m of messages) m.ts ??= ts;
    this.#resolve({ messages, plugin: this.#id, version: this.#version } satisfies Decoded);
  }
  fail(cause: string, message: string, logs: string[]): void {
    this.#count.failed++;
    if (this.#sample) this.#sample.failed(this.data, cause, message);
    this.#reject(new PluginCallError(this.#id, this.#version, cause, message, logs));
  }
}

/** What the calls share with the rest of the host. */
export interface CallState {
  /** the live version of each plugin id */
  readonly active: ReadonlyMap<string, Active>;
  /** calls per plugin id since start, by outcome (flux_plugin_calls) */
  readonly counts: Map<string, { ok: number; failed: number }>;
  /** shadow mode's taps on live decodes */
  readonly taps: ReadonlyMap<string, DecodeTap>;
  readonly defaults: PluginLimits;
  /** the live worker pool (throws 503 when the host is not running) */
  pool(): WorkerPool;
  /** static checks, compile and probe of a candidate module (throws a 400 FluxError) */
  inspect(bytes: Uint8Array, limits: PluginLimits): Promise<{ module: WebAssembly.Module }>;
}

export type PluginCalls = Pick<PluginHost, 'decode' | 'decodeFrame' | 'decodeUplink' | 'encode' | 'tryCall'>;

export function createPluginCalls(state: CallState): PluginCalls {
  const { active, counts, taps, defaults } = state;
  const thePool = state.pool;
  let tryCounter = 0;

  function outcomeError(id: string, version: number | 'candidate', o: CallOutcome & { ok: false }): PluginCallError {
    return new PluginCallError(id, version, o.cause, o.message, o.logs);
  }

  function counter(id: string): { ok: number; failed: number } {
    let c = counts.get(id);
    if (!c) counts.set(id, (c = { ok: 0, failed: 0 }));
    return c;
  }
  function count(id: string, ok: boolean): void {
    const c = counter(id);
    if (ok) c.ok++;
    else c.failed++;
  }

  /** Decodes one frame with the active version of `id`, telling which version did. Rejects with PluginCallError (or 404 when no such plugin is active). */
  function decodeFrame(id: string, bytes: Uint8Array, ts?: number, deviceId?: string, msgId?: string): Promise<Decoded> {
    const a = active.get(id);
    if (!a) return Promise.reject(new FluxError('plugin_not_loaded', `plugin '${id}' is not installed or not active`, 404));
    // One Promise and one call object per frame: this runs for every uplink.
    let p: Promise<Decoded>;
    try {
      p = new Promise(capture) as Promise<Decoded>;
      const sample = taps.size === 0 ? undefined : taps.get(id)?.take(deviceId, ts, msgId);
      thePool().submit(new DecodeCall(id, a, bytes, true, ts, counter(id), sample));
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return p;
  }

  /** The seed's `PluginHost::decode`: the plugin's output as it answered it (one message or an array). */
  function decode(id: string, bytes: Uint8Array): Promise<StandardMessage | StandardMessage[]> {
    const a = active.get(id);
    if (!a) return Promise.reject(new FluxError('plugin_not_loaded', `plugin '${id}' is not installed or not active`, 404));
    let p: Promise<StandardMessage | StandardMessage[]>;
    try {
      p = new Promise(capture) as Promise<StandardMessage | StandardMessage[]>;
      thePool().submit(new DecodeCall(id, a, bytes, false, undefined, counter(id)));
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return p;
  }

  /**
   * A command -> the bytes for the device. `command` is its name (with `params`), or the whole JSON
   * object the plugin receives (`{ command, params, … }`, e.g. with `device_id`).
   */
  async function encode(id: string, command: string | { command: string; params?: unknown; [k: string]: unknown }, params: unknown = {}): Promise<Buffer> {
    const a = active.get(id);
    if (!a) throw new FluxError('plugin_not_loaded', `plugin '${id}' is not installed or not active`, 404);
    const body = typeof command === 'string' ? { command, params } : { params: {}, ...command };
    const o = await thePool().call(a.key, 1, Buffer.from(JSON.stringify(body)), a.deadlineMs);
    count(id, o.ok);
    if (!o.ok) throw outcomeError(id, a.version, o);
    return Buffer.from(o.bytes!.buffer, o.bytes!.byteOffset, o.bytes!.byteLength);
  }

  /** Try before deploy: runs one call on the active version, or on a candidate module that is loaded only for this call. */
  async function tryCall(id: string, op: 'decode' | 'encode', input: Uint8Array, candidate?: Uint8Array): Promise<TryResult> {
    const p = thePool();
    let key: string;
    let version: number | 'candidate';
    let sha256: string;
    let deadline: number;
    let temporary = false;
    if (candidate) {
      const limits = { ...defaults, ...(active.get(id)?.meta.limits ?? {}) };
      const checked = await state.inspect(candidate, limits);
      key = `${id}@try-${++tryCounter}/${limits.memory_mib}`;
      p.load(key, id, checked.module, limits.memory_mib * 2 ** 20);
      temporary = true;
      version = 'candidate';
      sha256 = crypto.createHash('sha256').update(candidate).digest('hex');
      deadline = limits.deadline_ms;
    } else {
      const a = active.get(id);
      if (!a) throw new FluxError('plugin_not_loaded', `plugin '${id}' is not installed or not active (send a candidate module to try one)`, 404);
      ({ key, version, sha256 } = a);
      deadline = a.deadlineMs;
    }
    const t0 = performance.now();
    const o = await p.call(key, op === 'decode' ? 0 : 1, input, deadline, true);
    const time_ms = Math.round((performance.now() - t0) * 1000) / 1000;
    if (temporary) p.unload(key);
    const plugin = { id, version, sha256 };
    if (!o.ok) return { ok: false, error: { cause: o.cause, message: outcomeError(id, version, o).message }, logs: o.logs, time_ms, plugin };
    const output = op === 'decode' ? o.value : { hex: Buffer.from(o.bytes!).toString('hex'), base64: Buffer.from(o.bytes!).toString('base64') };
    return { ok: true, output, logs: o.logs, time_ms, plugin };
  }

  /**
   * The pipeline's decode step (docs/architecture.md "The uplink path"): bytes of a product with a plugin
   * go through it; a product without one sends JSON `{ "values": {…}, "ts"? }`, or for a device event
   * (`eventId`) any JSON object: the event's payload (runtime/storage/events.ts).
   */
  function decodeUplink(product: { protocol_plugin_id: string | null }, up: UplinkBytes): Promise<Decoded | JsonDecoded> {
    if (product.protocol_plugin_id) return decodeFrame(product.protocol_plugin_id, up.payload, up.ts, up.deviceId, up.id);
    try {
      return Promise.resolve(decodeJson(up));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** A product without a plugin: JSON `{ "values": {…}, "ts"? }`. */
  function decodeJson(up: UplinkBytes): JsonDecoded {
    // Depth first, on the bytes: a 100,000-deep document parses, but later steps walk it recursively.
    checkJsonDepth(up.payload, 'the payload');
    let body: any;
    try {
      body = JSON.parse(Buffer.from(up.payload).toString('utf8'));
    } catch (err) {
      throw new FluxError('bad_payload', `the product has no protocol plugin and the payload is not JSON { "values": {…} }: ${(err as Error).message}`, 400);
    }
    if (up.eventId !== undefined) {
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new FluxError('bad_payload', `the payload of event '${up.eventId}' is not a JSON object`, 400);
      return { messages: [{ device_id: up.deviceId, values: body, ts: typeof body.ts === 'number' ? body.ts : up.ts, event_id: up.eventId }], plugin: null, version: null };
    }
    if (typeof body !== 'object' || body === null || typeof body.values !== 'object' || body.values === null || Array.isArray(body.values)) {
      throw new FluxError('bad_payload', 'the product has no protocol plugin and the payload has no "values" object', 400);
    }
    return { messages: [{ device_id: up.deviceId, values: body.values, ts: typeof body.ts === 'number' ? body.ts : up.ts }], plugin: null, version: null };
  }

  return { decode, decodeFrame, decodeUplink, encode, tryCall };
}
