/**
 * The plugin host's types and its declared interface: what the API, the nodes, the TCP ingress,
 * the downlink and plugin comparison (runtime/plugin-compare) may use of it.
 */
import type { Framing } from '../framing/index.ts';
import type { FluxModule, ComponentHealth } from '../app/context.ts';
import type { DecodeTap, LoadedVersion } from './loaded-version.ts';

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
  /** called once a change of what is live for plugin `id` is stored (cluster mode tells the other nodes) */
  onChange?: (id: string) => void;
}

/** The plugin host (runtime/plugins/host.ts builds it). */
export interface PluginHost extends FluxModule {
  /** limits a new plugin gets unless it is given its own */
  readonly defaults: PluginLimits;
  /** FLUX_PLUGINS_DIR */
  readonly pluginsDir: string;

  // store and versions (runtime/plugins/store.ts)
  /** Stores `bytes` as a version of `id` and (unless `activate: false`) activates it: a hot swap. */
  install(id: string, bytes: Uint8Array, source: 'api' | 'dir', limits?: Partial<PluginLimits>, opts?: { activate?: boolean }): Promise<{ version: PluginVersion; created: boolean }>;
  get(id: string): Promise<PluginInfo>;
  list(): Promise<PluginInfo[]>;
  remove(id: string): Promise<void>;
  rollback(id: string): Promise<PluginVersion>;
  activateVersion(id: string, version: number): Promise<PluginVersion>;
  setLimits(id: string, patch: Partial<PluginLimits>): Promise<PluginVersion>;
  /** Loads the stored active version of `id` (of every plugin without one) where what is live differs: changes made by another node. */
  refresh(id?: string): Promise<void>;
  /** The bytes of one stored version (project export, runtime/project). */
  wasm(id: string, version: number): Promise<Buffer>;

  // activation: what is live (runtime/plugins/host.ts)
  /** The active version's metadata (framing for the TCP ingress), synchronously. */
  meta(id: string): PluginMeta | undefined;
  activeVersion(id: string): number | undefined;

  // calls (runtime/plugins/calls.ts)
  /** The plugin's output as it answered it (one message or an array). */
  decode(id: string, bytes: Uint8Array): Promise<StandardMessage | StandardMessage[]>;
  /** One frame through the active version of `id`, telling which version did. */
  decodeFrame(id: string, bytes: Uint8Array, ts?: number, deviceId?: string, msgId?: string): Promise<Decoded>;
  /** The pipeline's decode step: the product's plugin, or JSON `{ "values": {…} }` without one. */
  decodeUplink(product: { protocol_plugin_id: string | null }, up: UplinkBytes): Promise<Decoded | JsonDecoded>;
  /** A command → the bytes for the device. */
  encode(id: string, command: string | { command: string; params?: unknown; [k: string]: unknown }, params?: unknown): Promise<Buffer>;
  /** Try before deploy: one call on the active version, or on a candidate module loaded for this call only. */
  tryCall(id: string, op: 'decode' | 'encode', input: Uint8Array, candidate?: Uint8Array): Promise<TryResult>;

  // comparison (runtime/plugin-compare)
  /** Worker threads of their own for a replay or a shadow version. */
  openComparePool(what: 'replay' | 'shadow', workers: number): ComparePool;
  /** Shadow mode's view of the live decodes of `id` (undefined: none). */
  setTap(id: string, tap: DecodeTap | undefined): void;

  health(): ComponentHealth;
}

/** An uplink's bytes as the decode step gets them. */
export interface UplinkBytes {
  payload: Uint8Array;
  deviceId: string;
  ts: number;
  id?: string;
  /** a device event's id (…/event/{eventId} uplinks) */
  eventId?: string;
}

/** What a product without a plugin decodes to. */
export interface JsonDecoded {
  messages: StandardMessage[];
  plugin: null;
  version: null;
}

/** A plugin version live in the workers: what a call binds to at submission. */
export interface Active {
  key: string;
  version: number;
  sha256: string;
  deadlineMs: number;
  meta: PluginMeta;
}
