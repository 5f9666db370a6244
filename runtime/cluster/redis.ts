/**
 * Cluster mode (FLUX_REDIS_URL set): the parts shared through Redis, which runtime/cluster/index.ts
 * loads only then (docs/operations.md "Memory").
 */
import { totals, type NodeReport, type NodeView } from './reporter.ts';
import { createSharedBrokerState } from './broker-state.ts';
import { createClusterCommands } from './commands.ts';
import { createClusterPresence } from './shared-presence.ts';
import { createClusterTraces } from './traces.ts';
import { createFeedRelay } from './feed-relay.ts';
import { createClusterChanges } from './changes.ts';
import { redisContextModule } from './context-store.ts';
import { createClusterRuleStats } from './rule-stats.ts';
import { createModbusLeases } from './modbus-leases.ts';
import { createClusterNode } from './node.ts';
import type { ComponentHealth } from '../app/context.ts';
import type { Cluster, ClusterOptions } from './index.ts';

export function createRedisCluster(opts: ClusterOptions, nodeId: string, url: string): Cluster {
  const { settings, log } = opts;
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
