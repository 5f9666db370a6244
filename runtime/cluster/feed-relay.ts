/**
 * The live feed across nodes (docs/cluster.md "Live feed"): an operator's `/api/ws` or GraphQL
 * subscription lands on any node behind the load balancer, while telemetry, device events and
 * status changes are produced on the node that handled the device. Each node relays what its feed
 * publishes to the others on the Redis channel `<prefix>feed`, but only while another node has a
 * listener: nodes with feed clients announce it in the sorted set `feedlisteners` (score: until when,
 * renewed every ANNOUNCE_MS), read by every node at the same pace. A node whose first listener
 * arrives also says so at once on the channel (`{ from, listening: true }`), so that a listener that
 * connects sees the other nodes' events from about one Redis round trip on, not one ANNOUNCE_MS.
 *
 * Alarm events are not relayed here: they travel with the configuration changes (changes.ts), which
 * also update each node's open alarms. The relay is best effort like the feed itself: events are
 * sent in one message per event-loop turn (at most MAX_BATCH; beyond, dropped and counted), and
 * dropped while Redis is unreachable.
 */
import type { Redis } from 'ioredis';
import type { FluxModule, ComponentHealth } from '../app/context.ts';
import type { Feed, FeedEvent, FeedRelay } from '../feed/index.ts';
import type { Logger } from '../log/index.ts';
import { closeRedis, connectOrExplain, openRedis, type RedisTarget } from './connection.ts';

const ANNOUNCE_MS = 1_000;
/** an announcement lasts this long: a node that stops renewing (killed) is forgotten after it */
const ANNOUNCE_TTL_MS = 3 * ANNOUNCE_MS;
const MAX_BATCH = 2_000;
/** a relayed message larger than this is not read */
const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
/** other nodes' "listening" notices remembered at most (one per node id) */
const MAX_HEARD = 1_024;
const MAX_NODE_ID_LENGTH = 64;
export const LISTENERS = 'feedlisteners';

export interface ClusterFeedRelay extends FeedRelay {
  /** the lifecycle part: start it after the feed */
  module(feed: Feed): FluxModule;
}

export function createFeedRelay(opts: { target: RedisTarget; nodeId: string; log: Logger }): ClusterFeedRelay {
  const { target, nodeId, log } = opts;
  const channel = `${target.prefix}feed`;
  let pub: Redis | undefined;
  let sub: Redis | undefined;
  /** whether another node has a feed listener (as of the last read of LISTENERS) */
  let othersListen = false;
  let batch: FeedEvent[] = [];
  let flushing = false;
  let sent = 0;
  let received = 0;
  let dropped = 0;
  /**
   * node id → until when its "listening" notice counts: a read of LISTENERS sent before that node
   * announced itself may answer after the notice, and must not undo it
   */
  const heard = new Map<string, number>();
  let announceNow: (() => void) | undefined;
  /**
   * At most one notice per ANNOUNCE_MS: a viewer opening and closing feed sockets in a loop would
   * otherwise make Redis writes at its own pace. A listener that comes within ANNOUNCE_MS of the last
   * notice is covered by it (the others count a notice for ANNOUNCE_TTL_MS, and this node renews its
   * entry in LISTENERS every ANNOUNCE_MS meanwhile).
   */
  let lastNoticeAt = -Infinity;
  let notices = 0;

  function othersHeard(now: number): boolean {
    let any = false;
    for (const [id, until] of heard) {
      if (until <= now) heard.delete(id);
      else any = true;
    }
    return any;
  }

  function flush(): void {
    flushing = false;
    const events = batch;
    batch = [];
    if (!pub || pub.status !== 'ready') {
      dropped += events.length;
      return;
    }
    sent += events.length;
    pub.publish(channel, JSON.stringify({ from: nodeId, events })).catch(() => void (dropped += events.length));
  }

  return {
    othersListen: () => othersListen,
    listening() {
      const now = performance.now();
      if (!announceNow || now - lastNoticeAt < ANNOUNCE_MS) return;
      lastNoticeAt = now;
      notices++;
      announceNow();
    },
    send(ev) {
      if (!othersListen || ev.type === 'alarm') return;
      if (batch.length >= MAX_BATCH) {
        dropped++;
        return;
      }
      batch.push(ev);
      if (!flushing) {
        flushing = true;
        setImmediate(flush);
      }
    },
    module(feed) {
      let timer: NodeJS.Timeout | undefined;
      const announce = async () => {
        if (!pub) return;
        const now = Date.now();
        if (feed.localClients() > 0) await pub.zadd(LISTENERS, now + ANNOUNCE_TTL_MS, nodeId);
        else await pub.zrem(LISTENERS, nodeId);
        await pub.zremrangebyscore(LISTENERS, '-inf', now); // announcements that lapsed (a killed node's)
        othersListen = (await pub.zrange(LISTENERS, 0, -1)).some((id) => id !== nodeId) || othersHeard(Date.now());
      };
      const failed = (err: Error) => log.debug({ err: err.message }, 'cluster: live feed announcement failed');
      announceNow = () => {
        pub?.publish(channel, JSON.stringify({ from: nodeId, listening: true })).catch(failed);
        announce().catch(failed);
      };
      const onMessage = (ch: string, text: string) => {
        if (ch !== channel || text.length > MAX_MESSAGE_BYTES) return;
        let msg: { from?: unknown; events?: unknown; listening?: unknown };
        try {
          msg = JSON.parse(text) as typeof msg;
        } catch {
          return log.warn('cluster: unreadable live feed message dropped');
        }
        if (msg.from === nodeId) return;
        if (msg.listening === true && typeof msg.from === 'string' && msg.from.length <= MAX_NODE_ID_LENGTH) {
          if (heard.size < MAX_HEARD || heard.has(msg.from)) heard.set(msg.from, Date.now() + ANNOUNCE_TTL_MS);
          othersListen = true;
          return;
        }
        if (!Array.isArray(msg.events)) return;
        for (const ev of msg.events as FeedEvent[]) {
          if (ev && typeof ev === 'object' && typeof ev.type === 'string' && ev.type !== 'alarm') {
            received++;
            feed.deliver(ev);
          }
        }
      };
      return {
        name: 'cluster_feed',
        async start() {
          // keys: true gives the listener set the prefix; channels never get it (connection.ts), so the name carries it
          pub = openRedis(target, 'cluster-feed', log, { keys: true, lazy: true });
          sub = openRedis(target, 'cluster-feed-sub', log, { keys: false, lazy: true });
          await connectOrExplain(pub, target.url);
          await connectOrExplain(sub, target.url);
          sub.on('message', onMessage);
          await sub.subscribe(channel);
          await announce().catch(() => undefined);
          timer = setInterval(() => announce().catch(failed), ANNOUNCE_MS);
          timer.unref();
        },
        async stop() {
          if (timer) clearInterval(timer);
          timer = undefined;
          announceNow = undefined;
          heard.clear();
          othersListen = false;
          const p = pub;
          const s = sub;
          await p?.zrem(LISTENERS, nodeId).catch(() => undefined);
          pub = sub = undefined;
          await Promise.all([p && closeRedis(p), s && closeRedis(s)]);
        },
        health(): ComponentHealth {
          return { ok: sub?.status === 'ready', others_listen: othersListen, sent, received, dropped, notices };
        },
      };
    },
  };
}
