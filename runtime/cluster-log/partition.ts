/**
 * One partition, processed by the node that holds its lease (runtime/cluster-log/leases.ts): its
 * messages are fetched in stream order from a durable pull consumer, their uplinks put on this
 * node's device bus in that order, and the consumer is acknowledged (AckAll) up to the newest
 * message whose uplinks have all left the flows: the partition's handled watermark.
 *
 * Taking a partition over starts a new consumer at the highest watermark any earlier consumer of
 * the partition reached and deletes those: what the previous holder had in flight is delivered
 * again at once and in order (rather than after an ack timeout, behind newer messages). At least
 * once, then; the stores are idempotent (same device, metric and ts stored once), so exactly once
 * in effect.
 */
import { randomBytes } from 'node:crypto';
import { AckPolicy, DeliverPolicy, type Consumer, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { DeviceBus } from '../bus/index.ts';
import type { Logger } from '../log/index.ts';
import { uplinkOfRecord } from '../uplink-log/index.ts';
import { decodeBatch } from './batch.ts';
import type { Engine } from './engine.ts';

/** messages per pull (each at most the appender's group size, runtime/cluster-log/appender.ts) */
const FETCH = 32;
const FETCH_EXPIRES_MS = 2000;
/** messages delivered to the bus and not yet handled, at most (each holds up to 1000 uplinks), and their bytes */
const MAX_TRACKED = 256;
const MAX_TRACKED_BYTES = 4 * 1024 * 1024;
/** acks are coalesced: the newest handled message is acknowledged after this long, or at once past ACK_AFTER messages (AckAll covers the older ones) */
const ACK_EVERY_MS = 20;
const ACK_AFTER = 64;
/** a release waits this long for what is in flight, then lets the next holder process it again */
const DRAIN_MS = 3000;
const RETRY_MS = 1000;

export interface PartitionWorker {
  readonly partition: number;
  /** the stream sequence up to which every message of the partition is handled */
  floor(): number;
  /** uplinks of the partition on the bus, not yet handled */
  inFlight(): number;
  /** Stops fetching, waits for what is in flight (bounded) and acknowledges it: a release. */
  stop(): Promise<void>;
  /** Stops at once, acknowledging nothing more: the lease was lost, another node has the partition. */
  abandon(): void;
}

export interface PartitionDeps {
  engine: Engine;
  bus: DeviceBus;
  logger: Logger;
  partition: number;
  /** this node's token (a consumer name part) */
  node: string;
  /** answers whether this node still holds the lease (asked before taking the partition again after an error) */
  stillMine(): Promise<boolean>;
}

interface Tracked {
  m: JsMsg;
  left: number;
}

export function startPartition(deps: PartitionDeps): PartitionWorker {
  const { engine, bus, logger, partition } = deps;
  const { jsm, js, names } = engine;
  const stream = names.stream(partition);
  // the partition's consumers; the readers' short-lived ones (runtime/cluster-log/reader.ts) have other names
  const prefix = `p${partition}_`;
  let alive = true;
  let gen = 0;
  let floor = 0;
  let uplinksInFlight = 0;
  let tracked: Tracked[] = [];
  let trackedBytes = 0;
  let latest: JsMsg | undefined;
  let acked: JsMsg | undefined;
  let ackTimer: NodeJS.Timeout | undefined;
  let fetching: ConsumerMessages | undefined;
  let wake: (() => void)[] = [];
  const wakeAll = () => {
    const w = wake;
    wake = [];
    for (const f of w) f();
  };

  /** A new consumer from the highest watermark of the partition's earlier ones, which are deleted. */
  const acquire = async (): Promise<Consumer> => {
    gen++;
    tracked = [];
    trackedBytes = 0;
    unacked = 0;
    uplinksInFlight = 0;
    latest = acked = undefined;
    const earlier: string[] = [];
    let from = 0;
    for await (const ci of jsm.consumers.list(stream)) {
      if (!ci.name.startsWith(prefix)) continue;
      earlier.push(ci.name);
      from = Math.max(from, ci.ack_floor.stream_seq);
    }
    floor = from;
    // unique per acquisition: a worker that lost its lease and a later one of the same node must not share a name
    const name = `${prefix}${deps.node}_${randomBytes(4).toString('hex')}`;
    await jsm.consumers.add(stream, {
      durable_name: name,
      ack_policy: AckPolicy.All,
      ...(from ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from + 1 } : { deliver_policy: DeliverPolicy.All }),
      // above what is tracked plus a pull plus what is handled and not yet acknowledged (acks()):
      // a pull held at this limit gets no heartbeats and fails
      max_ack_pending: MAX_TRACKED * 4,
      // a live holder acknowledges within ms; redelivery is the next holder's business (acquire)
      ack_wait: nanos(5 * 60_000),
    });
    for (const old of earlier) if (old !== name) await jsm.consumers.delete(stream, old).catch(() => false);
    return js.consumers.get(stream, name);
  };

  let unacked = 0;
  const ackNow = () => {
    clearTimeout(ackTimer);
    ackTimer = undefined;
    if (!latest || latest === acked) return;
    acked = latest;
    unacked = 0;
    latest.ack();
  };
  const scheduleAck = (messages: number) => {
    unacked += messages;
    if (unacked >= ACK_AFTER) return ackNow();
    if (ackTimer) return;
    const g = gen;
    ackTimer = setTimeout(() => {
      ackTimer = undefined;
      if (g === gen) ackNow();
    }, ACK_EVERY_MS);
  };

  const advance = () => {
    let last: Tracked | undefined;
    let n = 0;
    while (tracked.length && tracked[0]!.left === 0) {
      last = tracked.shift()!;
      trackedBytes -= last.m.data.length;
      n++;
    }
    if (!last) return;
    latest = last.m;
    floor = last.m.seq;
    scheduleAck(n);
    if (roomToFetch()) wakeAll();
  };

  /** Puts a message's uplinks on the bus, in order (the bus takes them even when behind). */
  const deliver = (m: JsMsg): void => {
    const records = decodeBatch(m.data, m.seq);
    const t: Tracked = { m, left: records.length };
    tracked.push(t);
    trackedBytes += m.data.length;
    if (!records.length) return advance();
    const g = gen;
    const settled = () => {
      if (g !== gen) return;
      uplinksInFlight--;
      if (--t.left === 0) advance();
    };
    uplinksInFlight += records.length;
    for (const r of records) bus.emit('uplink', uplinkOfRecord(r), settled);
  };

  const roomToFetch = () => tracked.length < MAX_TRACKED && trackedBytes < MAX_TRACKED_BYTES;
  const waitFor = (ready: () => boolean) =>
    new Promise<void>((resolve) => {
      if (ready() || !alive) return resolve();
      wake.push(resolve);
    });
  const busDrained = () => new Promise<void>((resolve) => {
    wake.push(resolve);
    bus.onDrain(resolve);
  });

  let lastError = 0;
  const run = async () => {
    let consumer: Consumer | undefined;
    while (alive) {
      try {
        consumer ??= await acquire();
        if (bus.behind()) await busDrained();
        await waitFor(roomToFetch);
        if (!alive) break;
        // Each message goes on the bus as it arrives (a quiet partition's pull stays open until it
        // expires); the bus is waited for only between pulls: an iterator left waiting stops with
        // "heartbeats missed" (@nats-io/jetstream's idle-heartbeat monitor), and a pull cut short
        // would leave delivered messages behind. (A pull bounded in bytes instead stalled at
        // max_ack_pending on nats-server 2.9 until its heartbeats were missed.)
        fetching = await consumer.fetch({ max_messages: FETCH, expires: FETCH_EXPIRES_MS });
        for await (const m of fetching) {
          // a message left out here is never acknowledged past (AckAll covers only older ones): the
          // next holder, or this one after an error, starts again from the watermark
          if (!alive) break;
          deliver(m);
        }
        fetching = undefined;
      } catch (err) {
        fetching = undefined;
        if (!alive) break;
        if (Date.now() - lastError > 10_000) {
          lastError = Date.now();
          logger.warn({ partition, err: (err as Error).message }, 'cluster log: a partition stopped fetching; it starts again from its watermark');
        }
        consumer = undefined;
        await new Promise((r) => setTimeout(r, RETRY_MS));
        // unknown (NATS unreachable): go on trying; the lease's renewal gives it up if it expires (leases.ts)
        if (alive && !(await deps.stillMine().catch(() => true))) alive = false;
      }
    }
  };
  const running = run();

  const halt = () => {
    alive = false;
    try {
      fetching?.stop();
    } catch {
      // already stopped
    }
    wakeAll();
  };

  return {
    partition,
    floor: () => floor,
    inFlight: () => uplinksInFlight,
    async stop() {
      halt();
      const until = Date.now() + DRAIN_MS;
      while (tracked.length && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      await running;
      clearTimeout(ackTimer);
      if (latest && latest !== acked) await latest.ackAck({ timeout: 1000 }).catch(() => false);
      gen++;
    },
    abandon() {
      halt();
      gen++;
      clearTimeout(ackTimer);
    },
  };
}
