/**
 * The plugin host: installs, versions, activates and rolls back plugins, follows FLUX_PLUGINS_DIR,
 * and routes decode/encode calls to the worker pool. Its parts: the stored versions (store.ts, the
 * registry rows and module files), the calls (calls.ts), the plugins folder (folder.ts); this file
 * holds what is live (activation, hot swap, limits) and composes them into the declared `PluginHost`
 * (types.ts).
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
import { Gauge } from 'prom-client';
import type { FluxContext } from '../app/context.ts';
import { FluxError, conflict, notFound } from '../errors/index.ts';
import { ABI_VERSION, PluginRejected, checkModule } from './abi.ts';
import { parseFraming, type Framing } from '../framing/index.ts';
import { checkSlug, pathInside, SLUG_PATTERN } from '../safe-id/index.ts';
import { WorkerPool } from './pool.ts';
import { loadedVersion, type DecodeTap, type LoadedVersion } from './loaded-version.ts';
import { createPluginStore } from './store.ts';
import { createPluginCalls } from './calls.ts';
import { pluginFolder } from './folder.ts';
import { createRefresh } from './refresh.ts';
import type { Active, ComparePool, PluginHost, PluginHostOptions, PluginInfo, PluginLimits, PluginMeta, PluginVersion } from './types.ts';

export { PluginCallError } from './types.ts';
export type { ComparePool, StandardMessage, PluginLimits, PluginMeta, PluginVersion, PluginInfo, Decoded, TryResult, PluginHostOptions, PluginHost, JsonDecoded, UplinkBytes } from './types.ts';
export type { DecodeSample, DecodeTap, LoadedVersion } from './loaded-version.ts';

/** Plugin ids become folder and file names: the one slug rule (runtime/safe-id). */
export const PLUGIN_ID_RE = new RegExp(SLUG_PATTERN);

/** A refused module: 400 naming the problem; an oversize one 413 `too_large`, like every body over its limit (docs/api.md). */
const rejected = (err: unknown): FluxError =>
  err instanceof PluginRejected ? new FluxError(err.code, err.message, err.code === 'too_large' ? 413 : 400) : err instanceof FluxError ? err : new FluxError('invalid_plugin', (err as Error).message, 400);

export function createPluginHost(ctx: FluxContext, opts: PluginHostOptions = {}): PluginHost {
  const log = ctx.log.child({ module: 'plugins' });
  const storeDir = path.join(ctx.settings.dataDir, 'plugins');
  const store = createPluginStore(ctx.registry, storeDir);
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
  /** tells the other nodes of a cluster that what is live for a plugin changed (committed first) */
  const changed = (id: string) => opts.onChange?.(id);

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
      const bytes = await store.readModule(id, v.version);
      module = (await checkModule(bytes, { maxBytes: Infinity, memoryCapBytes: limits.memory_mib * 2 ** 20 })).module;
    }
    const key = keyOf(id, v.version, limits);
    const p = thePool();
    p.load(key, id, module, limits.memory_mib * 2 ** 20);
    const previous = active.get(id);
    active.set(id, { key, version: v.version, sha256: v.sha256, deadlineMs: limits.deadline_ms, meta: v.meta });
    if (previous && previous.key !== key) p.unload(previous.key);
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
      const versions = await store.versionsOf(id);
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
        await store.markActive(id, same.version);
        changed(id);
        log.info({ plugin: id, version: same.version, source }, 'plugin version reactivated');
        return { version: { ...same, active: true }, created: false };
      }
      const version = (versions.at(-1)?.version ?? 0) + 1;
      const v = await store.add({ id, version, sha256, size: bytes.length, meta, source }, bytes);
      if (!activating) {
        log.info({ plugin: id, version, sha256, source, size: bytes.length }, 'plugin version stored (not active)');
        return { version: v, created: true };
      }
      await activate(id, v, checked.module);
      await store.markActive(id, version);
      changed(id);
      log.info({ plugin: id, version, sha256, source, size: bytes.length }, 'plugin installed');
      return { version: { ...v, active: true }, created: true };
    });
  }

  async function get(id: string): Promise<PluginInfo> {
    checkSlug('plugin', id);
    const versions = await store.versionsOf(id);
    if (!versions.length) throw notFound('plugin', id);
    const a = versions.find((v) => v.active);
    return { id, active_version: a?.version ?? null, meta: a?.meta ?? null, versions };
  }

  async function rollback(id: string): Promise<PluginVersion> {
    checkSlug('plugin', id);
    return locked(id, async () => {
      const versions = await store.versionsOf(id);
      if (!versions.length) throw notFound('plugin', id);
      const current = versions.find((v) => v.active);
      if (!current) throw conflict(`plugin '${id}' has no active version to roll back from`);
      const previous = versions.filter((v) => v.version < current.version).at(-1);
      if (!previous) throw conflict(`plugin '${id}' is at its first version (${current.version}); there is nothing to roll back to`);
      await activate(id, previous);
      await store.markActive(id, previous.version);
      changed(id);
      log.info({ plugin: id, from: current.version, to: previous.version }, 'plugin rolled back');
      return { ...previous, active: true };
    });
  }

  /** Makes a stored version the active one (a hot swap, as an install does). */
  async function activateVersion(id: string, version: number): Promise<PluginVersion> {
    checkSlug('plugin', id);
    return locked(id, async () => {
      const v = (await store.versionsOf(id)).find((x) => x.version === version);
      if (!v) throw notFound('plugin version', `${id}@${version}`);
      if (!v.active) {
        await activate(id, v);
        await store.markActive(id, version);
        changed(id);
        log.info({ plugin: id, version }, 'plugin version activated');
      }
      return { ...v, active: true };
    });
  }

  const refresh = createRefresh({
    store, active, defaults, keyOf, locked, activate, log,
    unload(id) {
      deactivate(id);
      counts.delete(id);
    },
    running: () => pool !== undefined,
  });

  /** Loads a stored version under a key of its own, for comparing it with another (runtime/plugin-compare). */
  async function loadVersion(id: string, version: number, p: WorkerPool): Promise<LoadedVersion> {
    checkSlug('plugin', id);
    const v = (await store.versionsOf(id)).find((x) => x.version === version);
    if (!v) throw notFound('plugin version', `${id}@${version}`);
    const limits = v.meta.limits ?? defaults;
    const bytes = await store.readModule(id, v.version);
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
      const versions = await store.versionsOf(id);
      const current = versions.find((v) => v.active);
      if (!current) throw notFound('active plugin', id);
      const limits = { ...defaults, ...current.meta.limits, ...patch };
      if (limits.memory_mib * 16 < current.meta.memory.initial_pages) {
        throw new FluxError('memory_over_cap', `version ${current.version} declares ${current.meta.memory.initial_pages / 16} MiB of initial memory, over a ${limits.memory_mib} MiB cap`, 400);
      }
      const meta = { ...current.meta, limits };
      await store.setMeta(id, current.version, meta);
      const v = { ...current, meta };
      await activate(id, v);
      changed(id);
      return v;
    });
  }

  async function remove(id: string): Promise<void> {
    checkSlug('plugin', id);
    // the store checks its own folder before it deletes anything (store.ts)
    const dirFile = pathInside(pluginsDir, `${id}.wasm`);
    return locked(id, async () => {
      const versions = await store.versionsOf(id);
      if (!versions.length) throw notFound('plugin', id);
      if (fs.existsSync(dirFile)) {
        throw conflict(`plugin '${id}' comes from ${dirFile}; remove that file (FLUX_PLUGINS_DIR) to unload it`);
      }
      deactivate(id);
      await store.remove(id);
      counts.delete(id);
      changed(id);
      log.info({ plugin: id }, 'plugin removed');
    });
  }

  const calls = createPluginCalls({ active, counts, taps, defaults, pool: thePool, inspect: async (bytes, limits) => (await inspect(bytes, limits).catch((err) => Promise.reject(rejected(err)))).checked });
  const folder = pluginFolder({ dir: pluginsDir, store, log, active, install, deactivate, locked });

  return {
    name: 'plugins',
    defaults,
    pluginsDir,
    install,
    get,
    async list(): Promise<PluginInfo[]> {
      const rows = await store.all();
      const byId = new Map<string, PluginVersion[]>();
      for (const r of rows) (byId.get(r.id) ?? byId.set(r.id, []).get(r.id)!).push(r);
      return [...byId].map(([id, versions]) => {
        const a = versions.find((v) => v.active);
        return { id, active_version: a?.version ?? null, meta: a?.meta ?? null, versions };
      });
    },
    remove,
    refresh,
    rollback,
    setLimits,
    activateVersion,
    openComparePool,
    /** Shadow mode's view of the live decodes of `id` (undefined: none). */
    setTap(id: string, tap: DecodeTap | undefined): void {
      if (tap) taps.set(id, tap);
      else taps.delete(id);
    },
    ...calls,
    /** The bytes of one stored version (project export, runtime/project). */
    async wasm(id: string, version: number): Promise<Buffer> {
      checkSlug('plugin', id);
      if (!(await store.versionsOf(id)).some((v) => v.version === version)) throw notFound('plugin version', `${id}@${version}`);
      return store.readModule(id, version);
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
      for (const v of await store.activeVersions()) {
        try {
          await activate(v.id, v);
        } catch (err) {
          log.error({ plugin: v.id, version: v.version, err: (err as Error).message }, 'stored plugin version cannot be loaded');
        }
      }
      await folder.scan();
      if (opts.watch !== false) folder.watch();
      log.info({ workers, spawned: 'on first call', plugins: [...active.keys()], dir: pluginsDir }, 'plugin host started');
    },
    async stop() {
      folder.close();
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

