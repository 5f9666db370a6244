/**
 * @module cluster-log — cluster mode's durable, shared uplink log on NATS JetStream
 * (FLUX_NATS_URL): appended before an uplink is acknowledged on any node, partitioned by device,
 * each partition processed in order by one node at a time and taken over when that node dies
 * (docs/cluster.md "The shared uplink log"). Same face as runtime/uplink-log's module.
 */
export { createClusterLogModule, type ClusterLogDeps } from './module.ts';
export { partitionOf } from './batch.ts';
