/**
 * Keeps the stream within FLUX_RAW_RETENTION and FLUX_RAW_MAX_BYTES without dropping anything not
 * yet handled: each node purges, in the partitions it holds, the messages below that partition's
 * handled watermark that are older than the retention or, past three quarters of the budget, in the
 * oldest quarter of the stream. The stream itself refuses new messages at the budget (log_full);
 * it never discards on its own.
 */
import type { Engine } from './engine.ts';
import type { PartitionWorker } from './partition.ts';
import { seqAtTime } from './reader.ts';

export interface StreamStats {
  messages: number;
  bytes: number;
  firstSeq: number;
  lastSeq: number;
  /** uplink messages (groups) not yet acknowledged by any partition's holder */
  unhandled: number;
}

export async function tidy(engine: Engine, held: Map<number, PartitionWorker>, opts: { maxBytes: number; retentionMs: number }): Promise<StreamStats> {
  const { jsm, names } = engine;
  const s = (await jsm.streams.info(names.stream)).state;
  let cut = 0;
  if (s.bytes > opts.maxBytes * 0.75) cut = s.first_seq + Math.ceil((s.last_seq - s.first_seq + 1) / 4);
  if (s.messages && Date.parse(s.first_ts) < Date.now() - opts.retentionMs) cut = Math.max(cut, await seqAtTime(engine, Date.now() - opts.retentionMs));
  if (cut > s.first_seq) {
    for (const [p, w] of held) {
      const upTo = Math.min(cut, w.floor() + 1);
      if (upTo > s.first_seq) await jsm.streams.purge(names.stream, { filter: names.subject(p), seq: upTo });
    }
  }
  let unhandled = 0;
  // the partitions' consumers (runtime/cluster-log/partition.ts), not the readers' short-lived ones
  for await (const ci of jsm.consumers.list(names.stream)) if (/^p\d+_/.test(ci.name)) unhandled += ci.num_pending + ci.num_ack_pending;
  return { messages: s.messages, bytes: s.bytes, firstSeq: s.first_seq, lastSeq: s.last_seq, unhandled };
}
