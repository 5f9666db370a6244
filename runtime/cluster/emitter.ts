/**
 * The emitter aedes routes publishes through in a cluster: local first, then the other nodes through
 * mqemitter-redis.
 *
 * mqemitter-redis alone delivers even local publishes only once they come back from Redis: with
 * Redis unreachable, nothing is delivered, aedes' publish chain fails before its `published` hook,
 * and the uplink never reaches the device bus (runtime/broker/uplinks.ts). Here a publish reaches
 * this node's subscribers (and so `published`) whether Redis answers or not; the copy for the other
 * nodes carries this node's id, and this node drops it when Redis echoes it back, so nothing is
 * delivered or handled twice (aedes' own listeners, `$SYS/…`, included; a client's delivery is also
 * de-duplicated by aedes by broker id and counter). Subscriptions are made on both.
 *
 * A publish no other node listens to (interest.ts: the filters every node announces) is not sent to
 * Redis at all: a device's uplink usually has no subscriber, and its PUBLISH was ~15% of a node's CPU
 * per uplink plus a Redis round trip before aedes read the device's next packets (docs/cluster.md).
 *
 * Channels are `<prefix>mqtt/<topic>`: the prefix is a topic level of its own, so `#` and `+`
 * filters keep their meaning (mqemitter-redis turns them into Redis glob patterns and checks
 * matches with its own matcher).
 */
import mqemitter from 'mqemitter';
import MQEmitterRedis from 'mqemitter-redis';
import type { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { createInterest, type NoticeBus } from './interest.ts';

type Packet = Record<string, unknown> & { topic: string };
type Listener = (packet: Packet, done: () => void) => void;

/** the field that names the node a copy for the other nodes came from */
const ORIGIN = 'fluxNode';

export interface ClusterEmitterOptions {
  nodeId: string;
  /** FLUX_REDIS_PREFIX */
  prefix: string;
  pub: Redis;
  sub: Redis;
  /** a publish that could not go to the other nodes (Redis unreachable or failing) */
  onRemoteFailure(err: Error): void;
  /** how often this node renews its listed filters and re-reads the others' (interest.ts): the heartbeat period */
  refreshMs: number;
}

/** What aedes uses of an mqemitter (node_modules/aedes/aedes.js: on, emit, removeListener, close). */
export interface ClusterEmitter {
  on(topic: string, listener: Listener, done?: () => void): ClusterEmitter;
  emit(packet: Packet, done?: (err?: Error) => void): void;
  removeListener(topic: string, listener: Listener, done?: () => void): void;
  close(done: () => void): void;
}

export function createClusterEmitter(opts: ClusterEmitterOptions): ClusterEmitter {
  const { nodeId, pub } = opts;
  const channelPrefix = `${opts.prefix}mqtt/`;
  // concurrency 0: no queue (the broker bounds what is in flight; runtime/broker/index.ts `concurrency`)
  const local = mqemitter({ concurrency: 0, matchEmptyLevels: true });
  const remote = MQEmitterRedis({ pubConn: pub, subConn: opts.sub, concurrency: 0, matchEmptyLevels: true });
  // its connections' errors come out here; an 'error' nobody hears would end the process
  (remote as unknown as { state: EventEmitter }).state.on('error', (err: Error) => opts.onRemoteFailure(err));
  const interest = createInterest({ nodeId, prefix: opts.prefix, pub, sub: opts.sub, bus: remote as unknown as NoticeBus, refreshMs: opts.refreshMs, onFailure: opts.onRemoteFailure });
  /** one wrapper per listener, whatever its topics, so removeListener finds it; `topics` counts its subscriptions */
  const fromOthers = new Map<Listener, { wrapper: Listener; topics: number }>();

  function wrapperOf(listener: Listener): Listener {
    let w = fromOthers.get(listener);
    if (!w) {
      const wrapper: Listener = (packet, done) => {
        if (packet[ORIGIN] === nodeId) return done(); // this node's own publish, delivered locally already
        const { [ORIGIN]: _origin, ...rest } = packet;
        listener({ ...rest, topic: packet.topic.slice(channelPrefix.length) }, done);
      };
      fromOthers.set(listener, (w = { wrapper, topics: 0 }));
    }
    w.topics++;
    return w.wrapper;
  }

  const self: ClusterEmitter = {
    on(topic, listener, done) {
      local.on(topic, listener);
      // done (aedes' SUBACK follows) once Redis subscribed this node and the other nodes were told
      let pending = 2;
      const subscribed = () => {
        if (--pending === 0) done?.();
      };
      interest.add(topic, subscribed);
      remote.on(channelPrefix + topic, wrapperOf(listener), subscribed);
      return self;
    },
    removeListener(topic, listener, done) {
      local.removeListener(topic, listener);
      const w = fromOthers.get(listener);
      if (!w) return done?.();
      interest.remove(topic);
      if (--w.topics <= 0) fromOthers.delete(listener);
      remote.removeListener(channelPrefix + topic, w.wrapper, done);
    },
    emit(packet, done) {
      let pending = 2;
      const finish = () => {
        if (--pending === 0) done?.();
      };
      local.emit(packet, finish);
      // no other node listens to this topic (a device's uplink, mostly): nothing crosses Redis
      if (!interest.elsewhere(packet.topic)) return finish();
      if (pub.status !== 'ready') {
        // Redis is reconnecting: the other nodes cannot hear it now; this node's subscribers did
        opts.onRemoteFailure(new Error(`Redis connection ${pub.status}`));
        return finish();
      }
      remote.emit({ ...packet, topic: channelPrefix + packet.topic, [ORIGIN]: nodeId }, (err?: Error) => {
        if (err) opts.onRemoteFailure(err);
        finish();
      });
    },
    close(done) {
      let finished = false;
      const end = () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        opts.pub.disconnect();
        opts.sub.disconnect();
        done();
      };
      // mqemitter-redis closes by QUIT and waits for both connections to end, which never happens
      // while Redis is unreachable: then (or after a second) the connections are dropped instead
      const timer = setTimeout(end, 1000);
      interest.close();
      local.close(() => (pub.status === 'ready' && opts.sub.status === 'ready' ? remote.close(end) : end()));
    },
  };

  return self;
}
