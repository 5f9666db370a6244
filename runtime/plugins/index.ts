/**
 * @module plugins — sandboxed WebAssembly protocol plugins (docs/plugin-abi.md):
 * the host (worker pool, versions, hot swap, FLUX_PLUGINS_DIR), the ABI checks and TCP framing.
 * Other modules get the host from the composition root (runtime/app/index.ts) as a typed argument.
 */
export { createPluginHost, PluginCallError, PLUGIN_ID_RE } from './host.ts';
export type { PluginHost, PluginHostOptions, PluginInfo, PluginVersion, PluginMeta, PluginLimits, StandardMessage, Decoded, TryResult, DecodeTap, DecodeSample, LoadedVersion, ComparePool, JsonDecoded, UplinkBytes } from './host.ts';
export type { CallOutcome } from './pool.ts';
export { parseFraming, createFramer, DEFAULT_MAX_FRAME, type Framing, type Framer } from '../framing/index.ts';
export { ABI_VERSION, PluginRejected, checkModule } from './abi.ts';
