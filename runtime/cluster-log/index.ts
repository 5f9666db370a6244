/**
 * @module cluster-log — cluster mode's durable, shared uplink log on NATS JetStream
 * (FLUX_NATS_URL): appended before an uplink is acknowledged on any node, partitioned by device,
 * each partition processed in order by one node at a time and taken over when that node dies
 * (docs/cluster.md "The shared uplink log"). Same face as runtime/uplink-log's module.
 */
import { createRequire } from 'node:module';
import type { UplinkLogModule } from '../uplink-log/index.ts';
import type { ClusterLogDeps } from './module.ts';

export type { ClusterLogDeps } from './module.ts';
export { partitionOf } from './batch.ts';

/**
 * The NATS client (@nats-io/*) loads only when FLUX_NATS_URL is set, on this call: a synchronous
 * `require` of the ES module (Node 24's require(esm); no top-level await below it), because the
 * composition root builds its modules synchronously (docs/operations.md "Memory").
 */
export function createClusterLogModule(deps: ClusterLogDeps): UplinkLogModule {
  const { createClusterLogModule: create } = createRequire(import.meta.url)('./module.ts') as typeof import('./module.ts');
  return create(deps);
}
