/**
 * @module cluster — several FLUX nodes behind a TCP load balancer, sharing Redis (FLUX_REDIS_URL;
 * docs/cluster.md). Without it FLUX is one node and this module only describes that node.
 *
 * Parts, each handed by the composition root (runtime/app) to the module that uses it:
 * - `brokerState` → broker: sessions, subscriptions, retained messages, offline queues on Redis, and
 *   cross-node delivery (broker-state.ts, emitter.ts);
 * - `presence` → presence: whether a device is online anywhere (shared-presence.ts, scripts.ts);
 * - `commands` → downlink: commands for a device connected to another node go through it (commands.ts);
 * - `changes` → rules, plugins, registry: notices of configuration changed on one node, applied on
 *   the others (changes.ts);
 * - `ruleStats` → rules: every node's rule counters in Redis, summed where a rule is shown (rule-stats.ts);
 * - `modbusLeases` → Modbus master: one node polls each Modbus endpoint (modbus-leases.ts);
 * - `contextStore` → flow engine: Node-RED's default context store, on Redis (context-store.ts);
 * - `module(deps)` → the start order: registration, heartbeats, taking back dead nodes' devices (node.ts);
 * - `clusterRoutes` → the API: `GET /api/cluster` (routes.ts).
 */
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import type { FluxSettings } from '../../settings.ts';
import type { Logger } from '../log/index.ts';
import type { MetricsRegistry } from '../metrics/index.ts';
import type { FluxModule, ComponentHealth } from '../app/context.ts';
import type { SharedBrokerState } from '../broker/index.ts';
import type { RemoteCommands, SharedPresence } from '../ingress/index.ts';
import { createRequire } from 'node:module';
import type { ClusterTraces } from './traces.ts';
import type { ClusterFeedRelay } from './feed-relay.ts';
import type { ClusterChanges } from './changes.ts';
import type { NodeRedContextStore } from './context-store.ts';
import type { ClusterRuleStatsPart } from './rule-stats.ts';
import type { ModbusLeases } from './modbus-leases.ts';
import { createReporter, totals, type ClusterNodeDeps, type NodeView } from './reporter.ts';

export { clusterRoutes } from './routes.ts';
export type { ClusterNodeDeps, NodeReport, NodeStats, NodeView } from './reporter.ts';
export type { ClusterChanges, ChangeNotice, ChangeTargets } from './changes.ts';
export type { NodeRedContextStore, ContextLimits } from './context-store.ts';

/**
 * The Redis-backed parts (ioredis, aedes-persistence-redis, mqemitter-redis: ~5 MB of heap) load
 * only when FLUX_REDIS_URL is set: a synchronous `require` of the ES module (Node 24's require(esm);
 * no top-level await below it), because the composition root builds the cluster synchronously.
 */
const loadRedisCluster = (): typeof import('./redis.ts') => createRequire(import.meta.url)('./redis.ts');

export interface ClusterDescription {
  mode: 'single' | 'cluster';
  self: string;
  heartbeat_ms: number | null;
  nodes: NodeView[];
  totals: { nodes_up: number; mqtt_connections: number; devices_online: number; uplinks_per_s: number };
}

export interface ClusterModule extends FluxModule {
  describe(): Promise<ClusterDescription>;
}

export interface Cluster {
  readonly enabled: boolean;
  readonly nodeId: string;
  readonly brokerState?: SharedBrokerState;
  readonly presence?: SharedPresence;
  readonly commands?: RemoteCommands;
  /** message traces of every node (a trace lives on the node that handled the uplink) */
  readonly traces?: ClusterTraces;
  /** the live feed's events to and from the other nodes */
  readonly feedRelay?: ClusterFeedRelay;
  /** configuration changes told to and applied from the other nodes */
  readonly changes?: ClusterChanges;
  /** rule counters of every node */
  readonly ruleStats?: ClusterRuleStatsPart;
  readonly modbusLeases?: ModbusLeases;
  /** Node-RED's default context store: the flows' context in Redis, shared by every node (context-store.ts) */
  readonly contextStore?: () => NodeRedContextStore;
  /** the lifecycle module; start it before the broker, so it stops after it */
  module(deps: ClusterNodeDeps): ClusterModule;
}

export interface ClusterOptions {
  settings: Pick<FluxSettings, 'redisUrl' | 'cluster'>;
  log: Logger;
  metrics: MetricsRegistry;
  version: string;
}

export function createCluster(opts: ClusterOptions): Cluster {
  const { settings } = opts;
  const nodeId = settings.cluster.nodeId ?? `${os.hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 40)}-${randomBytes(3).toString('hex')}`;
  const url = settings.redisUrl;
  if (!url) {
    return {
      enabled: false,
      nodeId,
      module(deps) {
        const reporter = createReporter(nodeId, opts.version, deps);
        return {
          name: 'cluster',
          start: async () => void reporter.listen(),
          stop: async () => reporter.unlisten(),
          health: (): ComponentHealth => ({ ok: true, mode: 'single', node: nodeId }),
          async describe() {
            await reporter.freshHealth();
            const me: NodeView = { ...reporter.report(true), status: 'up', heartbeat_age_ms: null, self: true };
            return { mode: 'single', self: nodeId, heartbeat_ms: null, nodes: [me], totals: totals([me]) };
          },
        };
      },
    };
  }

  return loadRedisCluster().createRedisCluster(opts, nodeId, url);
}
