/**
 * Reading the shared log back: a device's raw traffic (`GET /api/devices/{id}/raw`) and a time
 * range for a plugin replay (runtime/plugin-compare). Each read is a short-lived ordered consumer
 * on a partition's stream (no acknowledgements, deleted afterwards). A device's traffic is read from
 * its partition's stream only; newest first reads windows of it backwards, each one four times the
 * last, until the page is full or the window is older than `from`. A replay reads the partitions one
 * after the other. Reads not by device are not offered (the raw traffic API always names one).
 *
 * A record's receive time (`ts`) is the receiving node's clock and a message's time is the NATS
 * server's: message times are trusted only up to CLOCK_SLACK_MS.
 */
import { FluxError } from '../errors/index.ts';
import type { LogRecord, RawQuery } from '../uplink-log/index.ts';
import { decodeBatch, partitionOf, streamSeqOf } from './batch.ts';
import type { Engine } from './engine.ts';
import type { JsMsg } from '@nats-io/jetstream';

const CLOCK_SLACK_MS = 60_000;
const FETCH = 256;
/** the first backwards window, in messages of the partition's stream (groups of uplinks) */
const FIRST_WINDOW = 256;

const msgTime = (m: JsMsg) => Number(m.info.timestampNanos / 1e6);

/** The messages of partition `p`'s stream from `start` (a stream sequence or a time) up to stream sequence `last`, in order. */
async function* messages(engine: Engine, p: number, start: { seq: number } | { time: number }, last: number): AsyncGenerator<JsMsg> {
  const opts = 'seq' in start ? { opt_start_seq: Math.max(1, start.seq) } : { opt_start_time: new Date(Math.max(0, start.time)).toISOString() };
  const consumer = await engine.js.consumers.get(engine.names.stream(p), opts);
  try {
    if ((await consumer.info(true)).num_pending === 0) return;
    for (;;) {
      const batch = await consumer.fetch({ max_messages: FETCH, expires: 1000 });
      let got = 0;
      for await (const m of batch) {
        got++;
        if (m.seq > last) return;
        yield m;
        if (m.info.pending === 0) return;
      }
      if (got === 0) return;
    }
  } finally {
    await consumer.delete().catch(() => false);
  }
}

async function streamBounds(engine: Engine, p: number): Promise<{ first: number; last: number }> {
  const s = (await engine.jsm.streams.info(engine.names.stream(p))).state;
  return { first: s.first_seq, last: s.last_seq };
}

/** The sequence of the first message partition `p`'s stream stored at or after `time` (last + 1 when none). */
export async function seqAtTime(engine: Engine, p: number, time: number): Promise<number> {
  const { last } = await streamBounds(engine, p);
  for await (const m of messages(engine, p, { time }, last)) return m.seq;
  return last + 1;
}

export interface Reader {
  read(q: RawQuery): Promise<LogRecord[]>;
  scan(q: { from: number; to: number }): AsyncGenerator<LogRecord[]>;
}

export function createReader(engine: Engine, partitions: number): Reader {
  const matches = (q: RawQuery) => {
    const from = q.from ?? -Infinity, to = q.to ?? Infinity, after = q.afterSeq ?? 0, before = q.beforeSeq ?? Infinity;
    return (r: LogRecord) => r.seq > after && r.seq < before && r.ts >= from && r.ts <= to && (q.deviceId === undefined || r.deviceId === q.deviceId);
  };
  const partitionFor = (q: RawQuery) => {
    if (q.deviceId === undefined) throw new FluxError('cluster_unsupported', 'cluster mode reads the uplink log by device only', 501);
    return partitionOf(q.deviceId, partitions);
  };

  const oldestFirst = async (q: RawQuery): Promise<LogRecord[]> => {
    const p = partitionFor(q);
    const { last } = await streamBounds(engine, p);
    const ok = matches(q);
    const start = q.afterSeq !== undefined ? { seq: streamSeqOf(q.afterSeq) } : q.from !== undefined ? { time: q.from - CLOCK_SLACK_MS } : { seq: 1 };
    const out: LogRecord[] = [];
    let bytes = 0;
    for await (const m of messages(engine, p, start, last)) {
      if (q.to !== undefined && msgTime(m) > q.to + CLOCK_SLACK_MS) break;
      for (const r of decodeBatch(m.data, m.seq)) {
        if (!ok(r)) continue;
        out.push(r);
        bytes += r.payload.length;
        if (out.length >= q.limit || bytes >= (q.maxBytes ?? Infinity)) return out;
      }
    }
    return out;
  };

  const newestFirst = async (q: RawQuery): Promise<LogRecord[]> => {
    const p = partitionFor(q);
    const { first, last } = await streamBounds(engine, p);
    const ok = matches(q);
    let hi = q.beforeSeq !== undefined ? Math.min(last, streamSeqOf(q.beforeSeq)) : q.to !== undefined ? Math.min(last, (await seqAtTime(engine, p, q.to + CLOCK_SLACK_MS)) - 1) : last;
    const out: LogRecord[] = [];
    let bytes = 0;
    for (let span = FIRST_WINDOW; hi >= first && out.length < q.limit && bytes < (q.maxBytes ?? Infinity); span *= 4) {
      const lo = Math.max(first, hi - span + 1);
      const found: LogRecord[] = [];
      let oldest = Infinity;
      for await (const m of messages(engine, p, { seq: lo }, hi)) {
        oldest = Math.min(oldest, msgTime(m));
        for (const r of decodeBatch(m.data, m.seq)) if (ok(r)) found.push(r);
      }
      for (const r of found.reverse()) {
        if (out.length >= q.limit || bytes >= (q.maxBytes ?? Infinity)) break;
        out.push(r);
        bytes += r.payload.length;
      }
      if (q.from !== undefined && oldest < q.from - CLOCK_SLACK_MS) break;
      hi = lo - 1;
    }
    return out;
  };

  return {
    read: (q) => (q.order === 'desc' ? newestFirst(q) : oldestFirst(q)),
    async *scan(q) {
      let found: LogRecord[] = [];
      for (let p = 0; p < partitions; p++) {
        const { last } = await streamBounds(engine, p);
        for await (const m of messages(engine, p, { time: q.from - CLOCK_SLACK_MS }, last)) {
          if (msgTime(m) > q.to + CLOCK_SLACK_MS) break;
          for (const r of decodeBatch(m.data, m.seq)) if (r.ts >= q.from && r.ts <= q.to) found.push(r);
          if (found.length >= 4096) {
            yield found;
            found = [];
          }
        }
      }
      if (found.length) yield found;
    },
  };
}
