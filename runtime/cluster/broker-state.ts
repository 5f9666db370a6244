/**
 * The broker's state shared by every node (runtime/broker `SharedBrokerState`): aedes-persistence-redis
 * for sessions, subscriptions, retained messages and offline queues, and the cluster emitter
 * (emitter.ts, over mqemitter-redis) for delivery across nodes.
 *
 * While Redis is unreachable a device's publish must still reach the device bus: aedes stops its
 * publish chain at the first failing step, before the `published` hook that hands the uplink on
 * (runtime/broker/uplinks.ts). So a retained message or an offline-queue entry that cannot be
 * stored is counted and logged, not failed: the uplink itself is already in the uplink log and
 * acknowledged. New connections are refused meanwhile (`available()`, CONNACK "server unavailable").
 */
import redisPersistence from 'aedes-persistence-redis';
import type { Redis } from 'ioredis';
import type { Logger } from '../log/index.ts';
import type { MetricsRegistry } from '../metrics/index.ts';
import { counter } from '../metrics/index.ts';
import type { SharedBrokerState } from '../broker/index.ts';
import { openRedis, closeRedis, type RedisTarget } from './connection.ts';
import { createClusterEmitter } from './emitter.ts';

/** offline messages expire after the longest session FLUX allows (runtime/broker sessionExpiryIntervalLimit) */
const OFFLINE_MESSAGE_TTL_S = 7 * 24 * 3600;
/** queued messages sent to a session when it resumes, at most (the rest on its next resume) */
const MAX_SESSION_DELIVERY = 1000;

/** What FLUX wraps of aedes-persistence-redis (node_modules/aedes-persistence/callBackPersistence.js). */
interface WrappedPersistence {
  storeRetained(packet: unknown, cb?: unknown): Promise<void> | void;
  outgoingEnqueueCombi(subs: unknown, packet: unknown, cb?: unknown): Promise<void> | void;
}

export interface BrokerStateOptions {
  target: RedisTarget;
  nodeId: string;
  heartbeatMs: number;
  log: Logger;
  metrics: MetricsRegistry;
}

export function createSharedBrokerState(opts: BrokerStateOptions): SharedBrokerState {
  const log = opts.log.child({ module: 'cluster' });
  const failures = counter(opts.metrics, 'flux_cluster_redis_failures_total', 'broker operations on the shared state that failed (Redis unreachable), by operation', ['op']);
  let db: Redis | undefined;
  let pub: Redis | undefined;
  let lastLogged = 0;

  function failed(op: string, err: Error): void {
    failures.inc({ op });
    const now = Date.now();
    if (now - lastLogged > 10_000) {
      lastLogged = now;
      log.warn({ op, err: err.message }, 'shared broker state: operation failed (Redis unreachable?)');
    }
  }

  /** The promise form (aedes 2 uses it) of `method`, its failures counted and swallowed. */
  function tolerant(persistence: WrappedPersistence, method: 'storeRetained' | 'outgoingEnqueueCombi', op: string): void {
    const original = persistence[method].bind(persistence) as (...args: unknown[]) => Promise<void> | void;
    (persistence as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      if (typeof args[args.length - 1] === 'function') return original(...args);
      return Promise.resolve(original(...args)).catch((err: Error) => failed(op, err));
    };
  }

  return {
    nodeId: opts.nodeId,
    heartbeatMs: opts.heartbeatMs,
    open() {
      const conn = openRedis(opts.target, 'broker-state', log, { keys: true });
      const pubConn = openRedis(opts.target, 'broker-pub', log, { keys: false });
      const subConn = openRedis(opts.target, 'broker-sub', log, { keys: false });
      db = conn;
      pub = pubConn;
      const persistence = redisPersistence({ conn, maxSessionDelivery: MAX_SESSION_DELIVERY, packetTTL: () => OFFLINE_MESSAGE_TTL_S }) as unknown as WrappedPersistence;
      tolerant(persistence, 'storeRetained', 'retained');
      tolerant(persistence, 'outgoingEnqueueCombi', 'offline_queue');
      const mq = createClusterEmitter({ nodeId: opts.nodeId, prefix: opts.target.prefix, pub: pubConn, sub: subConn, onRemoteFailure: (err) => failed('cross_node', err), refreshMs: opts.heartbeatMs });
      return {
        persistence,
        mq,
        async close() {
          db = undefined;
          pub = undefined;
          // aedes.close() closed the emitter (and its two connections); the persistence's is ours
          await closeRedis(conn);
          pubConn.disconnect();
          subConn.disconnect();
        },
      };
    },
    available: () => db?.status === 'ready' && pub?.status === 'ready',
  };
}
