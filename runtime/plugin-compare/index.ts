/**
 * @module plugin-compare — a plugin version against the active one before it goes live: replay
 * of recorded uplinks (runtime/uplink-log) and shadow mode on live traffic, compared frame by
 * frame, never stored (docs/plugin-abi.md "Replay and shadow mode").
 */
import { Gauge } from 'prom-client';
import type { Logger } from '../log/index.ts';
import type { MetricsRegistry } from '../metrics/index.ts';
import type { PluginHost } from '../plugins/index.ts';
import type { Registry } from '../registry/index.ts';
import type { UplinkLog } from '../uplink-log/index.ts';
import { createReplayer, type Replayer } from './replay.ts';
import { createShadows, type Shadows } from './shadow.ts';

export { REPLAY_LIMIT_DEFAULT, REPLAY_LIMIT_MAX, REPLAY_DIFFS_MAX, REPLAYS_AT_ONCE, type ReplayRequest, type ReplayReport, type Replayer } from './replay.ts';
export { createShadows, SHADOW_QUEUE_MAX, SHADOW_DIFFS_MAX, type ShadowStatus, type Shadows } from './shadow.ts';
export { replayBody, shadowBody } from './request.ts';
export { sameJson, type Diff, type Counts } from './compare.ts';

export interface PluginCompare {
  readonly name: 'plugin_compare';
  readonly replays: Replayer;
  readonly shadows: Shadows;
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): { ok: boolean; shadows: number };
}

export interface PluginCompareDeps {
  host: PluginHost;
  log: UplinkLog;
  registry: Registry;
  metrics: MetricsRegistry;
  logger: Logger;
}

export function createPluginCompare({ host, log, registry, metrics, logger }: PluginCompareDeps): PluginCompare {
  const replays = createReplayer({ host, log, registry, logger });
  const shadows = createShadows({ host, logger });
  new Gauge({
    name: 'flux_plugin_shadow_frames',
    help: 'live frames a shadow version decoded beside the active one, by outcome (same, different, failed; dropped: not compared, the shadow queue was full)',
    labelNames: ['plugin', 'version', 'outcome'],
    registers: [metrics],
    collect() {
      this.reset();
      for (const s of shadows.all()) {
        const labels = { plugin: s.plugin, version: String(s.version) };
        this.set({ ...labels, outcome: 'same' }, s.same);
        this.set({ ...labels, outcome: 'different' }, s.different);
        this.set({ ...labels, outcome: 'failed' }, s.failed);
        this.set({ ...labels, outcome: 'dropped' }, s.dropped);
      }
    },
  });
  return {
    name: 'plugin_compare',
    replays,
    shadows,
    async start() {},
    async stop() {
      shadows.stopAll();
      await replays.stop();
    },
    health: () => ({ ok: true, shadows: shadows.all().length }),
  };
}
