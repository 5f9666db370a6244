/**
 * What the durable uplink log (log.ts) declares: its options, its records' input, its refusals, its
 * queries and its face.
 */
import type { LogRecord } from './record.ts';

export type FsyncPolicy = 'always' | 'os';

export interface UplinkLogOptions {
  dir: string;
  /**
   * `always`: a group with an acknowledged append is fdatasynced before its callbacks, others within
   * SYNC_EVERY_MS (log.ts) (survives power loss); `os`: page cache (survives a process crash)
   */
  fsync: FsyncPolicy;
  /** handled entries older than this are deleted (ms) */
  retentionMs: number;
  /** the log's disk budget; past it old handled segments go, and if none can, appends are refused */
  maxBytes: number;
  /** largest segment file (default: maxBytes / 8, between 64 KiB and 64 MiB, and never over maxBytes / 4) */
  segmentBytes?: number;
}

export type AppendInput = Omit<LogRecord, 'seq'>;
export type AppendCallback = (err: Error | null, seq: number) => void;

/**
 * The log refuses an append: it is full of unhandled entries, the disk failed, or (cluster mode,
 * runtime/cluster-log) the log engine cannot be reached or is too slow.
 */
export type LogRefusal = 'log_full' | 'log_write_failed' | 'log_unavailable';
export class LogRefusedError extends Error {
  readonly code: LogRefusal;
  constructor(code: LogRefusal, message: string) {
    super(message);
    this.code = code;
  }
}

export interface RawQuery {
  deviceId?: string;
  from?: number;
  to?: number;
  /** only entries after this seq (the page cursor, oldest first) */
  afterSeq?: number;
  /** only entries before this seq (the page cursor, newest first) */
  beforeSeq?: number;
  /** 'desc': newest first */
  order?: 'asc' | 'desc';
  limit: number;
  /** stop once the payloads taken reach this many bytes (at least one entry is taken) */
  maxBytes?: number;
}

export interface UplinkLogStats {
  segments: number;
  bytes: number;
  lastSeq: number;
  handledSeq: number;
  unhandled: number;
  appends: number;
  groups: number;
  /** fdatasyncs of the log's data (`fsync: 'always'`) */
  syncs: number;
  refused: number;
  /** entries of earlier runs found missing while processing them again: a damaged block of a segment took them */
  lost: number;
  full: boolean;
}

export interface UplinkLog {
  /** `truncatedBytes`: a torn tail cut off; `skippedBytes`: damaged bytes inside the open segment, skipped. */
  open(): Promise<{ unhandled: number; truncatedBytes: number; skippedBytes: number }>;
  /**
   * Appends; `cb` runs once the entry is durable under the fsync policy (or with the refusal).
   * Answers the entry's seq, or 0 when it is refused at once (the log is full).
   * `sync: false`: nobody is told of this append, so `cb` runs once it is written (in the page
   * cache) and its fdatasync may come up to SYNC_EVERY_MS (log.ts) later.
   */
  append(input: AppendInput, cb: AppendCallback, sync?: boolean): number;
  appendAsync(input: AppendInput): Promise<number>;
  /** The entry has left the flows (stored, or failed with a reason): the watermark may pass it. */
  handled(seq: number): void;
  /** Entries appended before this start and not handled: what a restart processes again. */
  unhandled(): AsyncGenerator<LogRecord>;
  /** Entries by device and receive time, in seq order. */
  read(q: RawQuery): Promise<LogRecord[]>;
  /** Entries received in [from, to], in seq order, one segment's worth at a time (a replay reads more than a page). */
  scan(q: { from: number; to: number }): AsyncGenerator<LogRecord[]>;
  stats(): UplinkLogStats;
  /** Writes what is pending and the watermark; closes the file. */
  close(): Promise<void>;
}
