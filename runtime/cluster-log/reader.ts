/**
 * Reading the shared log back: a device's raw traffic (`GET /api/devices/{id}/raw`) and a time
 * range for a plugin replay (runtime/plugin-compare). Each read is a short-lived ordered consumer
 * on the stream (no acknowledgements, deleted afterwards). A device's traffic is read from its
 * partition's subject only; newest first reads windows of the stream backwards, each one four times
 * the last, until the page is full or the window is older than `from`.
 *
 * A record's receive time (`ts`) is the receiving node's clock and a message's time is the NATS
 * server's: message times are trusted only up to CLOCK_SLACK_MS.
 */
import type { LogRecord, RawQuery } from '../uplink-log/index.ts';
import { decodeBatch, partitionOf, streamSeqOf } from './batch.ts';
import type { Engine } from './engine.ts';
import type { JsMsg } from '@nats-io/jetstream';

const CLOCK_SLACK_MS = 60_000;
const FETCH = 256;
/** the first backwards window, in stream sequences */
const FIRST_WINDOW = 4096;

const msgTime = (m: JsMsg) => Number(m.info.timestampNanos / 1e6);

/**
 * The messages matching `filter` from `start` (a stream sequence or a time) up to stream sequence
 * `last`, in order.
 */
async function* messages(engine: Engine, filter: string, start: { seq: number } | { time: number }, last: number): AsyncGenerator<JsMsg> {
  const opts = 'seq' in start ? { filter_subjects: filter, opt_start_seq: Math.max(1, start.seq) } : { filter_subjects: filter, opt_start_time: new Date(Math.max(0, start.time)).toISOString() };
  const consumer = await engine.js.consumers.get(engine.names.stream, opts);
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

async function streamBounds(engine: Engine): Promise<{ first: number; last: number }> {
  const s = (await engine.jsm.streams.info(engine.names.stream)).state;
  return { first: s.first_seq, last: s.last_seq };
}

/** The stream sequence of the first message stored at or after `time` (last + 1 when none). */
export async function seqAtTime(engine: Engine, time: number): Promise<number> {
  const { last } = await streamBounds(engine);
  for await (const m of messages(engine, engine.names.all, { time }, last)) return m.seq;
  return last + 1;
}

export interface Reader {
  read(q: RawQuery): Promise<LogRecord[]>;
  scan(q: { from: number; to: number }): AsyncGenerator<LogRecord[]>;
}

export function createReader(engine: Engine, partitions: number): Reader {
  const { names } = engine;
  const matches = (q: RawQuery) => {
    const from = q.from ?? -Infinity, to = q.to ?? Infinity, after = q.afterSeq ?? 0, before = q.beforeSeq ?? Infinity;
    return (r: LogRecord) => r.seq > after && r.seq < before && r.ts >= from && r.ts <= to && (q.deviceId === undefined || r.deviceId === q.deviceId);
  };
  const filterOf = (q: RawQuery) => (q.deviceId === undefined ? names.all : names.subject(partitionOf(q.deviceId, partitions)));

  const oldestFirst = async (q: RawQuery): Promise<LogRecord[]> => {
    const { last } = await streamBounds(engine);
    const ok = matches(q);
    const start = q.afterSeq !== undefined ? { seq: streamSeqOf(q.afterSeq) } : q.from !== undefined ? { time: q.from - CLOCK_SLACK_MS } : { seq: 1 };
    const out: LogRecord[] = [];
    for await (const m of messages(engine, filterOf(q), start, last)) {
      if (q.to !== undefined && msgTime(m) > q.to + CLOCK_SLACK_MS) break;
      for (const r of decodeBatch(m.data, m.seq)) {
        if (!ok(r)) continue;
        out.push(r);
        if (out.length >= q.limit) return out;
      }
    }
    return out;
  };

  const newestFirst = async (q: RawQuery): Promise<LogRecord[]> => {
    const { first, last } = await streamBounds(engine);
    const ok = matches(q);
    let hi = q.beforeSeq !== undefined ? Math.min(last, streamSeqOf(q.beforeSeq)) : q.to !== undefined ? Math.min(last, (await seqAtTime(engine, q.to + CLOCK_SLACK_MS)) - 1) : last;
    const out: LogRecord[] = [];
    for (let span = FIRST_WINDOW; hi >= first && out.length < q.limit; span *= 4) {
      const lo = Math.max(first, hi - span + 1);
      const found: LogRecord[] = [];
      let oldest = Infinity;
      for await (const m of messages(engine, filterOf(q), { seq: lo }, hi)) {
        oldest = Math.min(oldest, msgTime(m));
        for (const r of decodeBatch(m.data, m.seq)) if (ok(r)) found.push(r);
      }
      out.push(...found.reverse());
      if (q.from !== undefined && oldest < q.from - CLOCK_SLACK_MS) break;
      hi = lo - 1;
    }
    return out.slice(0, q.limit);
  };

  return {
    read: (q) => (q.order === 'desc' ? newestFirst(q) : oldestFirst(q)),
    async *scan(q) {
      const { last } = await streamBounds(engine);
      let found: LogRecord[] = [];
      for await (const m of messages(engine, names.all, { time: q.from - CLOCK_SLACK_MS }, last)) {
        if (msgTime(m) > q.to + CLOCK_SLACK_MS) break;
        for (const r of decodeBatch(m.data, m.seq)) if (r.ts >= q.from && r.ts <= q.to) found.push(r);
        if (found.length >= 4096) {
          yield found;
          found = [];
        }
      }
      if (found.length) yield found;
    },
  };
}
