/**
 * @module plugins — sandboxed WebAssembly protocol plugins (ARCHITECTURE §4 "Plugin ABI", §6):
 * the host (worker pool, versions, hot swap, FLUX_PLUGINS_DIR), the ABI checks and TCP framing.
 * Other modules use the host through `service<PluginHost>(ctx, 'plugins')`.
 */
export { createPluginHost, PluginCallError, PLUGIN_ID_RE } from './host.ts';
export type { PluginHost, PluginHostOptions, PluginInfo, PluginVersion, PluginMeta, PluginLimits, StandardMessage, Decoded, TryResult } from './host.ts';
export { parseFraming, createFrameSplitter, DEFAULT_MAX_FRAME } from './framing.ts';
export type { Framing, FrameSplitter } from './framing.ts';
export { ABI_VERSION, PluginRejected, checkModule } from './abi.ts';
