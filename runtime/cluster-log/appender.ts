/**
 * The receiving side of the shared log: every uplink is published to its device's partition and
 * acknowledged (PUBACK, 202) only once JetStream answered with its PubAck (the message is stored).
 *
 * Group commit, as in the single-node log (runtime/uplink-log/log.ts): a partition has at most
 * IN_FLIGHT publishes travelling; the uplinks that arrive meanwhile gather and go out as the next
 * message. A quiet partition sends each uplink at once; a busy one sends bigger messages, so the
 * per-message cost of a JetStream publish (docs/cluster.md has the figures) is paid per group.
 *
 * Bounded: past BEHIND uplinks (or 32 MiB) gathered or travelling, `behind()` turns ingress'
 * backpressure on; past REFUSE (or 64 MiB), and while NATS is unreachable, appends are refused at once (log_unavailable); a full
 * stream refuses with log_full. Nothing is retried: a refused uplink was never acknowledged.
 */
import type { AppendCallback, AppendInput } from '../uplink-log/index.ts';
import { LogRefusedError } from '../uplink-log/index.ts';
import { encodeEntry, partitionOf, SEQ_STRIDE } from './batch.ts';
import type { Engine } from './engine.ts';
import { createPublisher } from './publish.ts';

/** publishes travelling per partition (order within a partition holds: one connection, in order) */
const IN_FLIGHT = 2;
/** uplinks (or bytes) gathered or travelling at which ingress is told to wait */
export const BEHIND = 20_000;
const BEHIND_BYTES = 32 * 1024 * 1024;
/** …and at which appends are refused */
export const REFUSE = 50_000;
const REFUSE_BYTES = 64 * 1024 * 1024;
const PUBLISH_TIMEOUT_MS = 5000;

interface PartitionQueue {
  entries: Buffer[];
  ids: string[];
  cbs: AppendCallback[];
  bytes: number;
  travelling: number;
}

export interface Appender {
  append(input: AppendInput, cb: AppendCallback): number;
  behind(): boolean;
  onDrain(cb: () => void): void;
  /** uplinks gathered or travelling */
  pending(): number;
  stats(): { appends: number; groups: number; refused: number };
  /** Refuses new appends and waits for the travelling ones (at most the publish timeout). */
  close(): Promise<void>;
}

export function createAppender(engine: Engine, partitions: number): Appender {
  const queues: PartitionQueue[] = Array.from({ length: partitions }, () => ({ entries: [], ids: [], cbs: [], bytes: 0, travelling: 0 }));
  // a group larger than this is split (a single uplink may exceed it alone); the partitions' pulls hold 32 groups (partition.ts)
  const publisher = createPublisher(engine.nc, PUBLISH_TIMEOUT_MS);
  const maxGroupBytes = Math.min(256 * 1024, Math.floor(engine.maxPayload / 2));
  const dirty = new Set<number>();
  let scheduled = false;
  let pending = 0;
  let pendingBytes = 0;
  let localSeq = 0;
  let closed = false;
  let drainWaiters: (() => void)[] = [];
  let idleWaiters: (() => void)[] = [];
  const counts = { appends: 0, groups: 0, refused: 0 };

  const refuse = (cb: AppendCallback, err: LogRefusedError) => {
    counts.refused++;
    queueMicrotask(() => cb(err, 0));
    return 0;
  };

  const behind = () => pending >= BEHIND || pendingBytes >= BEHIND_BYTES;
  const settled = (n: number, bytes: number) => {
    pending -= n;
    pendingBytes -= bytes;
    if (drainWaiters.length && pending <= BEHIND / 2 && pendingBytes <= BEHIND_BYTES / 2) {
      const w = drainWaiters;
      drainWaiters = [];
      for (const f of w) f();
    }
    if (pending === 0 && idleWaiters.length) {
      const w = idleWaiters;
      idleWaiters = [];
      for (const f of w) f();
    }
  };

  const send = (p: number) => {
    const q = queues[p]!;
    let n = 0, bytes = 0;
    while (n < q.entries.length && n < SEQ_STRIDE && (n === 0 || bytes + q.entries[n]!.length <= maxGroupBytes)) bytes += q.entries[n++]!.length;
    const entries = q.entries.splice(0, n);
    const cbs = q.cbs.splice(0, n);
    const firstId = q.ids.splice(0, n)[0]!;
    q.bytes -= bytes;
    const finish = (err: LogRefusedError | null) => {
      if (err) counts.refused += n;
      else counts.groups++;
      for (const cb of cbs) cb(err, 0);
      q.travelling--;
      settled(n, bytes);
      if (q.entries.length) send(p);
    };
    q.travelling++;
    if (!engine.connected()) return queueMicrotask(() => finish(unavailable()));
    // msgID: a group is published once, but a publish the client resends after a reconnect is stored once
    publisher.publish(engine.names.subject(p), n === 1 ? entries[0]! : Buffer.concat(entries, bytes), firstId, (err) => finish(err && refusalOf(err)));
  };

  const flush = () => {
    scheduled = false;
    for (const p of dirty) {
      const q = queues[p]!;
      while (q.entries.length && q.travelling < IN_FLIGHT) send(p);
    }
    dirty.clear();
  };

  return {
    append(input, cb) {
      if (closed) return refuse(cb, new LogRefusedError('log_unavailable', 'cluster log: closed'));
      if (!engine.connected()) return refuse(cb, unavailable());
      if (pending >= REFUSE || pendingBytes >= REFUSE_BYTES) return refuse(cb, new LogRefusedError('log_unavailable', `cluster log: NATS is too slow (${pending} uplinks, ${pendingBytes} bytes waiting for it)`));
      const entry = encodeEntry(input);
      if (entry.length > engine.maxPayload) return refuse(cb, new LogRefusedError('log_write_failed', `cluster log: an uplink of ${entry.length} bytes is over NATS' max_payload`));
      const p = partitionOf(input.deviceId, partitions);
      const q = queues[p]!;
      q.entries.push(entry);
      q.ids.push(input.id);
      q.cbs.push(cb);
      q.bytes += entry.length;
      pending++;
      pendingBytes += entry.length;
      counts.appends++;
      // a partition with a publish travelling gathers until it is back (send() goes on from finish)
      if (q.travelling < IN_FLIGHT) {
        dirty.add(p);
        if (!scheduled) {
          scheduled = true;
          setImmediate(flush);
        }
      }
      return ++localSeq;
    },
    behind,
    onDrain(cb) {
      if (!behind()) setImmediate(cb);
      else drainWaiters.push(cb);
    },
    pending: () => pending,
    stats: () => ({ ...counts }),
    async close() {
      closed = true;
      if (pending) await new Promise<void>((r) => idleWaiters.push(r));
      publisher.close();
    },
  };
}

const unavailable = () => new LogRefusedError('log_unavailable', 'cluster log: NATS is unreachable');

/** A failed publish as a refusal: the stream's limits → log_full; anything else → the engine is unavailable. */
export function refusalOf(err: Error): LogRefusedError {
  if (/maximum (bytes|messages)/i.test(err.message)) return new LogRefusedError('log_full', `cluster log: the stream is full of unprocessed uplinks (FLUX_RAW_MAX_BYTES; ${err.message})`);
  return new LogRefusedError('log_unavailable', `cluster log: NATS did not store the uplink (${err.message})`);
}
