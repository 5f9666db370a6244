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
import { createSharedBrokerState } from './broker-state.ts';
import { createClusterCommands } from './commands.ts';
import { createClusterPresence } from './shared-presence.ts';
import { createClusterTraces, type ClusterTraces } from './traces.ts';
import { createFeedRelay, type ClusterFeedRelay } from './feed-relay.ts';
import { createClusterChanges, type ClusterChanges } from './changes.ts';
import { redisContextModule, type NodeRedContextStore } from './context-store.ts';
import { createClusterRuleStats, type ClusterRuleStatsPart } from './rule-stats.ts';
import { createModbusLeases, type ModbusLeases } from './modbus-leases.ts';
import { createClusterNode, createReporter, type ClusterNodeDeps, type NodeReport } from './node.ts';

export { clusterRoutes } from './routes.ts';
export type { ClusterNodeDeps, NodeReport, NodeStats } from './node.ts';
export type { ClusterChanges, ChangeNotice, ChangeTargets } from './changes.ts';
export { CONTEXT_LIMITS, type NodeRedContextStore, type ContextLimits } from './context-store.ts';

export interface NodeView extends NodeReport {
  /** up: heartbeating; down: silent past the heartbeat period, its devices being taken back */
  status: 'up' | 'down';
  /** ms since its last heartbeat, by Redis' clock (null when it is down) */
  heartbeat_age_ms: number | null;
  self: boolean;
}

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

function totals(nodes: NodeView[]): ClusterDescription['totals'] {
  const up = nodes.filter((n) => n.status === 'up');
  const sum = (f: (n: NodeView) => number) => up.reduce((s, n) => s + (Number.isFinite(f(n)) ? f(n) : 0), 0);
  return { nodes_up: up.length, mqtt_connections: sum((n) => n.mqtt_connections), devices_online: sum((n) => n.devices_online), uplinks_per_s: Math.round(sum((n) => n.uplinks_per_s) * 10) / 10 };
}

export function createCluster(opts: ClusterOptions): Cluster {
  const { settings, log } = opts;
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

  const target = { url, prefix: settings.cluster.redisPrefix };
  const heartbeatMs = settings.cluster.heartbeatMs;
  // commands and presence use the node's connection and scripts, which exist once it has started
  const scripts = () => node.scripts();
  const commands = createClusterCommands({ nodeId, prefix: target.prefix, cmd: () => node.connection(), scripts, log: log.child({ module: 'cluster' }) });
  const traces = createClusterTraces({ nodeId, prefix: target.prefix, cmd: () => node.connection(), scripts, log: log.child({ module: 'cluster' }) });
  const presence = createClusterPresence(nodeId, scripts);
  const node = createClusterNode({ target, nodeId, heartbeatMs, version: opts.version, log, commands, traces, shared: presence });
  return {
    enabled: true,
    nodeId,
    brokerState: createSharedBrokerState({ target, nodeId, heartbeatMs, log, metrics: opts.metrics }),
    presence,
    commands,
    traces,
    feedRelay: createFeedRelay({ target, nodeId, log: log.child({ module: 'cluster' }) }),
    changes: createClusterChanges({ target, nodeId, log }),
    ruleStats: createClusterRuleStats({ target, nodeId, log }),
    modbusLeases: createModbusLeases(nodeId, () => node.connection()),
    contextStore: redisContextModule({ target, log }),
    module(deps) {
      const n = node;
      return {
        name: 'cluster',
        start: () => n.start(deps),
        stop: () => n.stop(),
        health: (): ComponentHealth => ({ ok: n.ready(), mode: 'cluster', node: nodeId, redis: n.ready() ? 'connected' : 'unreachable' }),
        async describe() {
          const rows = await n.scripts().list();
          const nodes: NodeView[] = [];
          for (const row of rows) {
            let report: NodeReport;
            try {
              report = JSON.parse(row.report) as NodeReport;
            } catch {
              continue; // not a report this version writes
            }
            const up = row.ttlMs > 0;
            nodes.push({ ...report, id: row.id, status: up ? 'up' : 'down', heartbeat_age_ms: up ? Math.max(0, heartbeatMs - row.ttlMs) : null, self: row.id === nodeId });
          }
          nodes.sort((a, b) => a.id.localeCompare(b.id));
          return { mode: 'cluster', self: nodeId, heartbeat_ms: heartbeatMs, nodes, totals: totals(nodes) };
        },
      };
    },
  };
}
