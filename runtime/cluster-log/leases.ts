/**
 * Which node processes which partition: a lease per partition in the JetStream key-value bucket
 * `<name>_leases` (key `p.<n>`, value the holder's token), renewed every third of FLUX_LOG_LEASE
 * by compare-and-set on its revision; the bucket's max age drops a lease that stops being renewed,
 * so a killed node's partitions are free after FLUX_LOG_LEASE and the survivors take them.
 *
 * Every node also keeps `node.<token>` alive, so each can count the live nodes and hold about its
 * share (partitions / nodes, rounded up): a node that holds more releases the extra ones (its
 * in-flight uplinks finish first), one that holds fewer takes free ones. Nodes join and leave
 * without a restart of the others.
 *
 * A node that cannot renew (cut off from NATS) keeps processing only until its lease would have
 * expired, then drops the partition; if it was merely slow, both may process the same messages for
 * a moment: at least once, which the idempotent stores absorb.
 */
import type { KV } from '@nats-io/kv';
import type { Logger } from '../log/index.ts';
import type { PartitionWorker } from './partition.ts';

export interface LeaseDeps {
  leases: KV;
  partitions: number;
  leaseMs: number;
  /** this node's token: letters, digits, `_` and `-` */
  node: string;
  logger: Logger;
  /** starts processing a partition this node now holds */
  startWorker(partition: number, stillMine: () => Promise<boolean>): PartitionWorker;
}

export interface Leases {
  start(): void;
  /** Releases every partition (after its in-flight uplinks, bounded) and leaves. */
  stop(): Promise<void>;
  held(): Map<number, PartitionWorker>;
  /** live nodes seen at the last renewal */
  nodes(): number;
}

interface Held {
  rev: number;
  renewedAt: number;
  worker: PartitionWorker;
}

export function createLeases(deps: LeaseDeps): Leases {
  const { leases: kv, partitions, leaseMs, node, logger } = deps;
  const held = new Map<number, Held>();
  const key = (p: number) => `p.${p}`;
  // nodes start looking at different partitions, so that two starting together do not collide on each
  const offset = [...node].reduce((a, c) => (a * 31 + c.charCodeAt(0)) >>> 0, 7) % partitions;
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<void> | undefined;
  let stopped = false;
  let liveNodes = 1;
  let lastError = 0;

  const stillMine = (p: number) => async () => {
    const h = held.get(p);
    if (!h) return false;
    const e = await kv.get(key(p));
    return !!e && e.operation === 'PUT' && e.string() === node;
  };

  const lost = (p: number, why: string) => {
    const h = held.get(p);
    if (!h) return;
    held.delete(p);
    h.worker.abandon();
    logger.warn({ partition: p, why }, 'cluster log: lost a partition lease; another node processes it');
  };

  const release = async (p: number) => {
    const h = held.get(p);
    if (!h) return;
    held.delete(p);
    await h.worker.stop();
    await kv.delete(key(p), { previousSeq: h.rev }).catch(() => {});
  };

  const renew = async (p: number, h: Held) => {
    try {
      h.rev = await kv.update(key(p), node, h.rev);
      h.renewedAt = Date.now();
    } catch {
      // not renewed: taken by another node, or NATS unreachable (then keep it while it cannot have expired)
      const e = await kv.get(key(p)).catch(() => undefined);
      if (e === undefined) {
        if (Date.now() - h.renewedAt >= leaseMs) lost(p, 'not renewed within FLUX_LOG_LEASE');
      } else if (e && e.operation === 'PUT' && e.string() === node) h.rev = e.revision;
      else lost(p, e ? 'held by another node' : 'expired');
    }
  };

  const countNodes = async () => {
    let n = 0;
    for await (const k of await kv.keys('node.*')) if (k) n++;
    return Math.max(1, n);
  };

  const tick = async () => {
    await kv.put(`node.${node}`, String(held.size));
    await Promise.all([...held].map(([p, h]) => renew(p, h)));
    if (stopped) return;
    liveNodes = await countNodes();
    const share = Math.ceil(partitions / liveNodes);
    if (held.size > share) {
      const extra = [...held.keys()].sort((a, b) => b - a).slice(0, held.size - share);
      await Promise.all(extra.map(release));
      logger.info({ released: extra, nodes: liveNodes }, 'cluster log: released partitions to the other nodes');
      return;
    }
    const taken: number[] = [];
    for (let i = 0; i < partitions && held.size < share && !stopped; i++) {
      const p = (offset + i) % partitions;
      if (held.has(p)) continue;
      let rev: number;
      try {
        rev = await kv.create(key(p), node);
      } catch {
        continue; // held by another node
      }
      held.set(p, { rev, renewedAt: Date.now(), worker: deps.startWorker(p, stillMine(p)) });
      taken.push(p);
    }
    if (taken.length) logger.info({ taken, holds: held.size, nodes: liveNodes }, 'cluster log: took partitions');
  };

  const runTick = () => {
    if (ticking || stopped) return;
    ticking = tick()
      .catch((err: Error) => {
        if (Date.now() - lastError > 10_000) {
          lastError = Date.now();
          logger.warn({ err: err.message }, 'cluster log: renewing partition leases failed');
        }
        // still renew what can expire: a lease not renewed within FLUX_LOG_LEASE is given up
        for (const [p, h] of held) if (Date.now() - h.renewedAt >= leaseMs) lost(p, 'not renewed within FLUX_LOG_LEASE');
      })
      .finally(() => (ticking = undefined));
  };

  return {
    start() {
      runTick();
      timer = setInterval(runTick, Math.max(250, Math.floor(leaseMs / 3)));
      timer.unref();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      await ticking;
      await Promise.all([...held.keys()].map(release));
      await kv.delete(`node.${node}`).catch(() => {});
    },
    held: () => new Map([...held].map(([p, h]) => [p, h.worker])),
    nodes: () => liveNodes,
  };
}
