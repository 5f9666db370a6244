/**
 * The plugin host: installs, versions, activates and rolls back plugins (registry rows + files in
 * the data dir), follows FLUX_PLUGINS_DIR, and routes decode/encode calls to the worker pool.
 *
 * Atomic swap (docs/plugin-abi.md): a call is bound to the version active at the moment it is
 * submitted (one synchronous map read); a new version is loaded into every worker before it
 * becomes active, and an old one is unloaded only after its last queued call answered.
 *
 * Idle memory: start() creates the pool without threads; activate() keeps the compiled module and
 * its limits on the main thread; the first decode/encode/try spawns the workers, which get every
 * active version before their first batch (pool.ts). Health says `workers: 0` until then.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Model } from 'sequelize';
import { Gauge } from 'prom-client';
import type { FluxContext } from '../app/context.ts';
import { FluxError, conflict, notFound } from '../errors/index.ts';
import { ABI_VERSION, PluginRejected, checkModule } from './abi.ts';
import { parseFraming, type Framing } from '../framing/index.ts';
import { checkSlug, isSlug, pathInside, SLUG_PATTERN } from '../safe-id/index.ts';
import { checkJsonDepth } from '../input-limits/index.ts';
import { WorkerPool, type Call, type CallOutcome } from './pool.ts';
import { loadedVersion, type DecodeSample, type DecodeTap, type LoadedVersion } from './loaded-version.ts';

export type { DecodeSample, DecodeTap, LoadedVersion } from './loaded-version.ts';

/** Stored versions loaded into worker threads of their own (a replay, a shadow version). */
export interface ComparePool {
  load(id: string, version: number): Promise<LoadedVersion>;
  close(): Promise<void>;
}

/** What `decode` produces (docs/plugin-abi.md). */
export interface StandardMessage {
  device_id: string;
  values: Record<string, number | string | boolean>;
  ts?: number;
  /** a device event's id (set for …/event/{eventId} uplinks): `values` is then the event's payload */
  event_id?: string;
}

export interface PluginLimits {
  /** per-call deadline; past it the worker is terminated and replaced */
  deadline_ms: number;
  /** the plugin's linear memory may not grow past this */
  memory_mib: number;
}

export interface PluginMeta {
  name?: string;
  version?: string;
  protocol?: string;
  framing?: Framing | null;
  abi: number;
  exports: string[];
  memory: { initial_pages: number; max_pages: number };
  limits: PluginLimits;
}

export interface PluginVersion {
  id: string;
  version: number;
  sha256: string;
  size: number;
  source: 'api' | 'dir';
  active: boolean;
  created_at: string;
  meta: PluginMeta;
}

export interface PluginInfo {
  id: string;
  active_version: number | null;
  meta: PluginMeta | null;
  versions: PluginVersion[];
}

export interface Decoded {
  messages: StandardMessage[];
  plugin: string;
  version: number;
}

export interface TryResult {
  ok: boolean;
  /** decode: the messages; encode: `{ hex, base64 }` */
  output?: unknown;
  error?: { cause: string; message: string };
  logs: string[];
  time_ms: number;
  plugin: { id: string; version: number | 'candidate'; sha256: string };
}

/** A call that failed; `message` names the plugin, its version and the cause. */
export class PluginCallError extends Error {
  readonly plugin: string;
  readonly version: number | 'candidate';
  readonly cause: string;
  readonly logs: string[];
  constructor(plugin: string, version: number | 'candidate', cause: string, message: string, logs: string[] = []) {
    super(`plugin '${plugin}'@${version}: ${cause}: ${message}`);
    this.name = 'PluginCallError';
    this.plugin = plugin;
    this.version = version;
    this.cause = cause;
    this.logs = logs;
  }
}

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

export interface PluginHostOptions {
  workers?: number;
  maxBatch?: number;
  maxInFlight?: number;
  /** a busy worker gets another batch only when this many frames wait; fewer coalesce until it answers */
  pipelineMin?: number;
  /** default per-call deadline */
  deadlineMs?: number;
  /** default memory cap */
  memoryMib?: number;
  /** largest module accepted */
  maxModuleBytes?: number;
  /** false: do not watch FLUX_PLUGINS_DIR (still scanned on start) */
  watch?: boolean;
}

interface Active {
  key: string;
  version: number;
  sha256: string;
  deadlineMs: number;
  meta: PluginMeta;
}

/** Plugin ids become folder and file names: the one slug rule (runtime/safe-id). */
export const PLUGIN_ID_RE = new RegExp(SLUG_PATTERN);

/** A refused module: 400 naming the problem; an oversize one 413 `too_large`, like every body over its limit (docs/api.md). */
const rejected = (err: unknown): FluxError =>
  err instanceof PluginRejected ? new FluxError(err.code, err.message, err.code === 'too_large' ? 413 : 400) : err instanceof FluxError ? err : new FluxError('invalid_plugin', (err as Error).message, 400);

export function createPluginHost(ctx: FluxContext, opts: PluginHostOptions = {}) {
  const log = ctx.log.child({ module: 'plugins' });
  const Plugin = ctx.registry.models.Plugin;
  const storeDir = path.join(ctx.settings.dataDir, 'plugins');
  const pluginsDir = ctx.settings.pluginsDir;
  const defaults: PluginLimits = { deadline_ms: opts.deadlineMs ?? 50, memory_mib: opts.memoryMib ?? 64 };
  const maxModuleBytes = opts.maxModuleBytes ?? 8 * 2 ** 20;
  const workers = opts.workers ?? Math.max(1, Math.min(os.availableParallelism() - 1, 4));
  const active = new Map<string, Active>();
  const locks = new Map<string, Promise<unknown>>();
  const counts = new Map<string, { ok: number; failed: number }>();
  const taps = new Map<string, DecodeTap>();
  let compareCounter = 0;
  let pool: WorkerPool | undefined;
  let watcher: fs.FSWatcher | undefined;
  const debounce = new Map<string, NodeJS.Timeout>();
  let tryCounter = 0;

  new Gauge({
    name: 'flux_plugin_calls',
    help: 'decode/encode calls per plugin since start, by outcome',
    labelNames: ['plugin', 'outcome'],
    registers: [ctx.metrics],
    collect() {
      for (const [id, c] of counts) {
        this.set({ plugin: id, outcome: 'ok' }, c.ok);
        this.set({ plugin: id, outcome: 'failed' }, c.failed);
      }
    },
  });
  new Gauge({
    name: 'flux_plugin_worker_restarts',
    help: 'plugin workers terminated and replaced (deadline passed or crash) since start',
    registers: [ctx.metrics],
    collect() {
      this.set(pool?.restarts ?? 0);
    },
  });

  function thePool(): WorkerPool {
    if (!pool) throw new FluxError('unavailable', 'the plugin host is not running', 503);
    return pool;
  }

  /** Runs `fn` after every earlier operation on the same plugin id (install, rollback, remove). */
  function locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = locks.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => undefined);
    locks.set(id, settled);
    void settled.then(() => {
      if (locks.get(id) === settled) locks.delete(id);
    });
    return next;
  }

  const rowOf = (m: Model): PluginVersion => {
    const o = m.get({ plain: true }) as Record<string, unknown>;
    return {
      id: o.id as string,
      version: Number(o.version),
      sha256: o.sha256 as string,
      size: Number(o.size),
      source: o.source as 'api' | 'dir',
      active: Boolean(o.active),
      created_at: o.created_at instanceof Date ? o.created_at.toISOString() : String(o.created_at),
      meta: o.meta as PluginMeta,
    };
  };

  async function versionsOf(id: string): Promise<PluginVersion[]> {
    const rows = await Plugin.findAll({ where: { id }, order: [['version', 'ASC']] });
    return rows.map(rowOf);
  }

  /** Static checks, compile and a probe in a worker: the module's meta, or a PluginRejected. */
  async function inspect(bytes: Uint8Array, limits: PluginLimits) {
    const checked = await checkModule(bytes, { maxBytes: maxModuleBytes, memoryCapBytes: limits.memory_mib * 2 ** 20 });
    let probe;
    try {
      probe = await thePool().probe(checked.module, limits.memory_mib * 2 ** 20, Math.max(limits.deadline_ms, 1000));
    } catch (err) {
      throw new PluginRejected('instantiation_failed', `the module cannot be instantiated: ${(err as Error).message}`);
    }
    if (probe.abi !== ABI_VERSION) throw new PluginRejected('wrong_abi_version', `flux_abi_version() returned ${probe.abi}; this host implements ABI version ${ABI_VERSION}`);
    const arity: Record<string, number> = { alloc: 1, dealloc: 2, decode: 2, encode: 2, meta: 0, flux_abi_version: 0 };
    for (const [name, n] of Object.entries(probe.params)) {
      if (arity[name] !== undefined && n !== arity[name]) throw new PluginRejected('wrong_signature', `export '${name}' takes ${n} parameter(s); the ABI says ${arity[name]}`);
    }
    const raw = (probe.meta ?? {}) as Record<string, unknown>;
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new PluginRejected('bad_meta', 'meta() must return a JSON object');
    let framing: Framing | null = null;
    if (raw.framing !== undefined && raw.framing !== null) {
      try {
        framing = parseFraming(raw.framing);
      } catch (err) {
        throw new PluginRejected('bad_meta', `meta(): ${(err as Error).message}`);
      }
    }
    const str = (v: unknown) => (typeof v === 'string' ? v.slice(0, 200) : undefined);
    const meta: PluginMeta = {
      name: str(raw.name),
      version: str(raw.version),
      protocol: str(raw.protocol),
      framing,
      abi: probe.abi,
      exports: checked.exports,
      memory: { initial_pages: checked.memory.initialPages, max_pages: checked.memory.maxPages },
      limits,
    };
    return { checked, meta };
  }

  const keyOf = (id: string, version: number, limits: PluginLimits) => `${id}@${version}/${limits.memory_mib}`;

  /** Loads a stored version into the workers, then makes it the one new calls use. */
  async function activate(id: string, v: PluginVersion, module?: WebAssembly.Module): Promise<void> {
    const limits = v.meta.limits ?? defaults;
    if (!module) {
      const file = pathInside(storeDir, checkSlug('plugin', id), `${v.version}.wasm`);
      const bytes = await fs.promises.readFile(file);
      module = (await checkModule(bytes, { maxBytes: Infinity, memoryCapBytes: limits.memory_mib * 2 ** 20 })).module;
    }
    const key = keyOf(id, v.version, limits);
    const p = thePool();
    p.load(key, id, module, limits.memory_mib * 2 ** 20);
    const previous = active.get(id);
    active.set(id, { key, version: v.version, sha256: v.sha256, deadlineMs: limits.deadline_ms, meta: v.meta });
    if (previous && previous.key !== key) p.unload(previous.key);
  }

  async function markActive(id: string, version: number | null): Promise<void> {
    // One statement, so it is atomic without a transaction: Sequelize gives a SQLite transaction a
    // second connection, whose lock waits block the event loop (runtime/registry notes).
    await ctx.registry.sequelize.query('UPDATE plugins SET active = (version = :version) WHERE id = :id', {
      replacements: { id, version: version ?? -1 },
    });
  }

  function deactivate(id: string): void {
    const a = active.get(id);
    if (!a) return;
    active.delete(id);
    pool?.unload(a.key);
  }

  /** Stores `bytes` as a version of `id` and (unless `activate: false`: kept for replay, shadow or a later promote) activates it. */
  async function install(id: string, bytes: Uint8Array, source: 'api' | 'dir', limitsIn: Partial<PluginLimits> = {}, opts: { activate?: boolean } = {}): Promise<{ version: PluginVersion; created: boolean }> {
    const activating = opts.activate !== false;
    checkSlug('plugin', id);
    return locked(id, async () => {
      const versions = await versionsOf(id);
      const current = versions.find((v) => v.active);
      const limits: PluginLimits = { ...defaults, ...(current?.meta.limits ?? {}), ...limitsIn };
      const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
      const same = versions.find((v) => v.sha256 === sha256 && v.meta.limits?.memory_mib === limits.memory_mib && v.meta.limits?.deadline_ms === limits.deadline_ms);
      if (same?.active || (same && !activating)) return { version: same, created: false };
      const { checked, meta } = await inspect(bytes, limits).catch((err) => {
        throw rejected(err);
      });
      if (same) {
        // The same bytes as a kept version (a file put back, an upload repeated): reactivate it.
        await activate(id, same, checked.module);
        await markActive(id, same.version);
        log.info({ plugin: id, version: same.version, source }, 'plugin version reactivated');
        return { version: { ...same, active: true }, created: false };
      }
      const version = (versions.at(-1)?.version ?? 0) + 1;
      const file = pathInside(storeDir, id, `${version}.wasm`);
      await fs.promises.mkdir(path.dirname(file), { recursive: true });
      await fs.promises.writeFile(file + '.tmp', bytes);
      await fs.promises.rename(file + '.tmp', file);
      const row = await Plugin.create({ id, version, sha256, file, size: bytes.length, meta, active: false, source, created_at: new Date() });
      const v = rowOf(row);
      if (!activating) {
        log.info({ plugin: id, version, sha256, source, size: bytes.length }, 'plugin version stored (not active)');
        return { version: v, created: true };
      }
      await activate(id, v, checked.module);
      await markActive(id, version);
      log.info({ plugin: id, version, sha256, source, size: bytes.length }, 'plugin installed');
      return { version: { ...v, active: true }, created: true };
    });
  }

  async function get(id: string): Promise<PluginInfo> {
    checkSlug('plugin', id);
    const versions = await versionsOf(id);
    if (!versions.length) throw notFound('plugin', id);
    const a = versions.find((v) => v.active);
    return { id, active_version: a?.version ?? null, meta: a?.meta ?? null, versions };
  }

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
      const { checked } = await inspect(candidate, limits).catch((err) => {
        throw rejected(err);
      });
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
  function decodeUplink(product: { protocol_plugin_id: string | null }, up: { payload: Uint8Array; deviceId: string; ts: number; id?: string; eventId?: string }): Promise<Decoded | { messages: StandardMessage[]; plugin: null; version: null }> {
    if (product.protocol_plugin_id) return decodeFrame(product.protocol_plugin_id, up.payload, up.ts, up.deviceId, up.id);
    try {
      return Promise.resolve(decodeJson(up));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** A product without a plugin: JSON `{ "values": {…}, "ts"? }`. */
  function decodeJson(up: { payload: Uint8Array; deviceId: string; ts: number; eventId?: string }): { messages: StandardMessage[]; plugin: null; version: null } {
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

  async function rollback(id: string): Promise<PluginVersion> {
    checkSlug('plugin', id);
    return locked(id, async () => {
      const versions = await versionsOf(id);
      if (!versions.length) throw notFound('plugin', id);
      const current = versions.find((v) => v.active);
      if (!current) throw conflict(`plugin '${id}' has no active version to roll back from`);
      const previous = versions.filter((v) => v.version < current.version).at(-1);
      if (!previous) throw conflict(`plugin '${id}' is at its first version (${current.version}); there is nothing to roll back to`);
      await activate(id, previous);
      await markActive(id, previous.version);
      log.info({ plugin: id, from: current.version, to: previous.version }, 'plugin rolled back');
      return { ...previous, active: true };
    });
  }

  /** Makes a stored version the active one (a hot swap, as an install does). */
  async function activateVersion(id: string, version: number): Promise<PluginVersion> {
    checkSlug('plugin', id);
    return locked(id, async () => {
      const v = (await versionsOf(id)).find((x) => x.version === version);
      if (!v) throw notFound('plugin version', `${id}@${version}`);
      if (!v.active) {
        await activate(id, v);
        await markActive(id, version);
        log.info({ plugin: id, version }, 'plugin version activated');
      }
      return { ...v, active: true };
    });
  }

  /** Loads a stored version under a key of its own, for comparing it with another (runtime/plugin-compare). */
  async function loadVersion(id: string, version: number, p: WorkerPool): Promise<LoadedVersion> {
    checkSlug('plugin', id);
    const v = (await versionsOf(id)).find((x) => x.version === version);
    if (!v) throw notFound('plugin version', `${id}@${version}`);
    const limits = v.meta.limits ?? defaults;
    const bytes = await fs.promises.readFile(pathInside(storeDir, id, `${v.version}.wasm`));
    const { module } = await checkModule(bytes, { maxBytes: Infinity, memoryCapBytes: limits.memory_mib * 2 ** 20 });
    const key = `${id}@${version}/${limits.memory_mib}/compare-${++compareCounter}`;
    p.load(key, id, module, limits.memory_mib * 2 ** 20);
    return loadedVersion(p, key, id, version, limits.deadline_ms);
  }

  /**
   * Worker threads of their own for a replay or a shadow version (spawned on the first call,
   * stopped by `close`): their calls never queue ahead of live decodes, and a candidate cut off at
   * its deadline on every frame replaces only these workers, never the live ones.
   */
  function openComparePool(what: 'replay' | 'shadow', workers: number): ComparePool {
    thePool();
    const own = new WorkerPool({
      workers,
      maxBatch: opts.maxBatch ?? 512,
      maxInFlight: opts.maxInFlight ?? 2,
      pipelineMin: opts.pipelineMin ?? 128,
      watchdogMs: 5,
      onRestart: (info) => log.warn(info, `plugin ${what} worker restarted`),
    });
    return { load: (id, version) => loadVersion(id, version, own), close: () => own.stop() };
  }

  async function setLimits(id: string, patch: Partial<PluginLimits>): Promise<PluginVersion> {
    checkSlug('plugin', id);
    return locked(id, async () => {
      const versions = await versionsOf(id);
      const current = versions.find((v) => v.active);
      if (!current) throw notFound('active plugin', id);
      const limits = { ...defaults, ...current.meta.limits, ...patch };
      if (limits.memory_mib * 16 < current.meta.memory.initial_pages) {
        throw new FluxError('memory_over_cap', `version ${current.version} declares ${current.meta.memory.initial_pages / 16} MiB of initial memory, over a ${limits.memory_mib} MiB cap`, 400);
      }
      const meta = { ...current.meta, limits };
      await Plugin.update({ meta }, { where: { id, version: current.version } });
      const v = { ...current, meta };
      await activate(id, v);
      return v;
    });
  }

  async function remove(id: string): Promise<void> {
    checkSlug('plugin', id);
    // Both paths are checked before anything is deleted.
    const folder = pathInside(storeDir, id);
    const dirFile = pathInside(pluginsDir, `${id}.wasm`);
    return locked(id, async () => {
      const versions = await versionsOf(id);
      if (!versions.length) throw notFound('plugin', id);
      if (fs.existsSync(dirFile)) {
        throw conflict(`plugin '${id}' comes from ${dirFile}; remove that file (FLUX_PLUGINS_DIR) to unload it`);
      }
      deactivate(id);
      await Plugin.destroy({ where: { id } });
      await fs.promises.rm(folder, { recursive: true, force: true });
      counts.delete(id);
      log.info({ plugin: id }, 'plugin removed');
    });
  }

  /** A file of FLUX_PLUGINS_DIR appeared, changed or went away. */
  async function syncFile(name: string): Promise<void> {
    const id = name.slice(0, -'.wasm'.length);
    if (!isSlug(id)) {
      log.warn({ file: name.slice(0, 200) }, `ignored: a plugin file name must be <id>.wasm with id matching ${SLUG_PATTERN}`);
      return;
    }
    const file = pathInside(pluginsDir, name);
    let bytes: Buffer | undefined;
    try {
      bytes = await fs.promises.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (!bytes) {
      await locked(id, async () => {
        const current = (await versionsOf(id)).find((v) => v.active);
        if (current?.source === 'dir') {
          deactivate(id);
          await markActive(id, null);
          log.info({ plugin: id, file }, 'plugin file removed: unloaded');
        }
      });
      return;
    }
    const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
    // The registry is the truth across restarts: only content the folder has not shown us before is a new deploy.
    const lastFromDir = (await versionsOf(id)).filter((v) => v.source === 'dir').at(-1);
    if (lastFromDir?.sha256 === sha256) return;
    try {
      const { version, created } = await install(id, bytes, 'dir');
      log.info({ plugin: id, version: version.version, created, file }, 'plugin loaded from the plugins folder');
    } catch (err) {
      log.warn({ plugin: id, file, err: (err as Error).message }, 'plugin file refused');
    }
  }

  async function scanDir(): Promise<void> {
    let names: string[];
    try {
      names = (await fs.promises.readdir(pluginsDir)).filter((n) => n.endsWith('.wasm'));
    } catch (err) {
      log.warn({ dir: pluginsDir, err: (err as Error).message }, 'FLUX_PLUGINS_DIR cannot be read; no plugins from the folder');
      return;
    }
    for (const n of names) await syncFile(n);
    // Versions that came from a file no longer in the folder are unloaded, as a removal while running would.
    for (const [id] of active) {
      if (!names.includes(`${id}.wasm`)) {
        const current = (await versionsOf(id)).find((v) => v.active);
        if (current?.source === 'dir') await syncFile(`${id}.wasm`);
      }
    }
  }

  function watch(): void {
    try {
      watcher = fs.watch(pluginsDir, { persistent: false }, (_event, name) => {
        if (!name || !name.endsWith('.wasm')) return;
        clearTimeout(debounce.get(name));
        // Copying a file fires several events; act once it has been quiet for a moment.
        debounce.set(
          name,
          setTimeout(() => {
            debounce.delete(name);
            syncFile(name).catch((err) => log.error({ err, file: name }, 'plugin folder sync failed'));
          }, 150),
        );
      });
      watcher.on('error', (err) => log.error({ err, dir: pluginsDir }, 'watching FLUX_PLUGINS_DIR failed'));
    } catch (err) {
      log.warn({ dir: pluginsDir, err: (err as Error).message }, 'FLUX_PLUGINS_DIR cannot be watched; restart to pick up new files');
    }
  }

  return {
    name: 'plugins',
    defaults,
    pluginsDir,
    install,
    get,
    async list(): Promise<PluginInfo[]> {
      const rows = (await Plugin.findAll({ order: [['id', 'ASC'], ['version', 'ASC']] })).map(rowOf);
      const byId = new Map<string, PluginVersion[]>();
      for (const r of rows) (byId.get(r.id) ?? byId.set(r.id, []).get(r.id)!).push(r);
      return [...byId].map(([id, versions]) => {
        const a = versions.find((v) => v.active);
        return { id, active_version: a?.version ?? null, meta: a?.meta ?? null, versions };
      });
    },
    remove,
    rollback,
    setLimits,
    activateVersion,
    openComparePool,
    /** Shadow mode's view of the live decodes of `id` (undefined: none). */
    setTap(id: string, tap: DecodeTap | undefined): void {
      if (tap) taps.set(id, tap);
      else taps.delete(id);
    },
    decode,
    decodeFrame,
    encode,
    tryCall,
    decodeUplink,
    /** The bytes of one stored version (project export, runtime/project). */
    async wasm(id: string, version: number): Promise<Buffer> {
      checkSlug('plugin', id);
      if (!(await versionsOf(id)).some((v) => v.version === version)) throw notFound('plugin version', `${id}@${version}`);
      return fs.promises.readFile(pathInside(storeDir, id, `${version}.wasm`));
    },
    /** The active version's metadata (framing for the TCP ingress), synchronously. */
    meta(id: string): PluginMeta | undefined {
      return active.get(id)?.meta;
    },
    activeVersion(id: string): number | undefined {
      return active.get(id)?.version;
    },
    async start() {
      await fs.promises.mkdir(storeDir, { recursive: true });
      pool = new WorkerPool({
        workers,
        maxBatch: opts.maxBatch ?? 512,
        maxInFlight: opts.maxInFlight ?? 2,
        pipelineMin: opts.pipelineMin ?? 128,
        watchdogMs: 5,
        onRestart: (info) => log.warn(info, 'plugin worker restarted'),
      });
      for (const row of await Plugin.findAll({ where: { active: true } })) {
        const v = rowOf(row);
        try {
          await activate(v.id, v);
        } catch (err) {
          log.error({ plugin: v.id, version: v.version, err: (err as Error).message }, 'stored plugin version cannot be loaded');
        }
      }
      await scanDir();
      if (opts.watch !== false) watch();
      log.info({ workers, spawned: 'on first call', plugins: [...active.keys()], dir: pluginsDir }, 'plugin host started');
    },
    async stop() {
      watcher?.close();
      watcher = undefined;
      for (const t of debounce.values()) clearTimeout(t);
      debounce.clear();
      const p = pool;
      pool = undefined;
      active.clear();
      await p?.stop();
    },
    health() {
      return { ok: Boolean(pool), workers: pool?.workers ?? 0, plugins: active.size, queued: pool?.queued ?? 0, restarts: pool?.restarts ?? 0 };
    },
  };
}

export type PluginHost = ReturnType<typeof createPluginHost>;
