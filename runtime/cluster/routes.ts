/** `GET /api/cluster`: the nodes, their health, heartbeats, connections and throughput (docs/cluster.md). */
import type { RouteTable } from '../api/index.ts';
import { FluxError } from '../errors/index.ts';
import type { ClusterModule } from './index.ts';

export function clusterRoutes(routes: RouteTable, cluster: Pick<ClusterModule, 'describe'>): void {
  routes.add({
    method: 'get',
    path: '/cluster',
    tag: 'system',
    role: 'viewer',
    errors: [503],
    summary:
      'The nodes of this cluster (one node without FLUX_REDIS_URL): each with its status (up, or down while its devices are taken back), health and failing modules, last heartbeat, MQTT connections, devices online and uplinks per second; and the totals over the nodes that are up',
    returns:
      '`{ mode: "single"|"cluster", self, heartbeat_ms, nodes: [{ id, status, self, healthy, failing, heartbeat_at, heartbeat_age_ms, started_at, version, host, pid, http_port, mqtt_port, mqtt_connections, devices_online, uplinks_per_s }], totals: { nodes_up, mqtt_connections, devices_online, uplinks_per_s } }`',
    handler: async () => {
      try {
        return await cluster.describe();
      } catch (err) {
        throw new FluxError('cluster_unavailable', `the cluster's shared state cannot be read: ${(err as Error).message}`, 503);
      }
    },
  });
}
