/**
 * Keeps each partition's stream within FLUX_RAW_RETENTION and its share of FLUX_RAW_MAX_BYTES
 * without dropping anything not yet handled: the holder of a partition purges the messages below
 * its handled watermark that are older than the retention or, past three quarters of the budget,
 * in the oldest quarter of the stream. The stream itself refuses new messages at its budget
 * (log_full); it never discards on its own.
 */
import type { Engine } from './engine.ts';
import type { PartitionWorker } from './partition.ts';
import { seqAtTime } from './reader.ts';

export interface StreamStats {
  /** messages (groups of uplinks) in the partitions this node holds */
  messages: number;
  bytes: number;
  /** …not yet acknowledged as handled */
  unhandled: number;
}

export async function tidy(engine: Engine, held: Map<number, PartitionWorker>, opts: { maxBytes: number; retentionMs: number }): Promise<StreamStats> {
  const { jsm, names } = engine;
  const budget = opts.maxBytes / engine.partitions;
  const out: StreamStats = { messages: 0, bytes: 0, unhandled: 0 };
  for (const [p, w] of held) {
    const stream = names.stream(p);
    const s = (await jsm.streams.info(stream)).state;
    let cut = 0;
    if (s.bytes > budget * 0.75) cut = s.first_seq + Math.ceil((s.last_seq - s.first_seq + 1) / 4);
    if (s.messages && Date.parse(s.first_ts) < Date.now() - opts.retentionMs) cut = Math.max(cut, await seqAtTime(engine, p, Date.now() - opts.retentionMs));
    const upTo = Math.min(cut, w.floor() + 1);
    if (upTo > s.first_seq) await jsm.streams.purge(stream, { seq: upTo });
    out.messages += s.messages;
    out.bytes += s.bytes;
    out.unhandled += Math.max(0, s.last_seq - w.floor());
  }
  return out;
}
