/**
 * Segment files of the uplink log: `<first seq, 16 digits>.seg` holds records in seq order; a
 * sealed segment has a `.meta` beside it (its seq and time range), so a start reads only the open
 * segment, never the whole log.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { decodeRecord, MAX_RECORD, PREFIX, RECORD_FIXED, type LogRecord } from './record.ts';

export interface SegmentInfo {
  file: string;
  firstSeq: number;
  lastSeq: number;
  minTs: number;
  maxTs: number;
  bytes: number;
  sealed: boolean;
}

const NAME = /^(\d{16})\.seg$/;

export function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(16, '0')}.seg`;
}

export function emptySegment(dir: string, firstSeq: number): SegmentInfo {
  return { file: path.join(dir, segmentName(firstSeq)), firstSeq, lastSeq: firstSeq - 1, minTs: Infinity, maxTs: -Infinity, bytes: 0, sealed: false };
}

export function note(seg: SegmentInfo, seq: number, ts: number, bytes: number): void {
  seg.lastSeq = seq;
  if (ts < seg.minTs) seg.minTs = ts;
  if (ts > seg.maxTs) seg.maxTs = ts;
  seg.bytes += bytes;
}

export async function seal(seg: SegmentInfo): Promise<void> {
  seg.sealed = true;
  const meta = { firstSeq: seg.firstSeq, lastSeq: seg.lastSeq, minTs: seg.minTs, maxTs: seg.maxTs, bytes: seg.bytes };
  await fsp.writeFile(seg.file.replace(/\.seg$/, '.meta'), JSON.stringify(meta));
}

/** What a walk over a segment's bytes found: where the last whole record ends, and the damaged bytes it skipped before it. */
export interface Walk {
  good: number;
  skipped: number;
}

/**
 * The whole records of a segment's bytes, in order. A crash only tears the tail (appends are
 * written in order and synced before they are acknowledged), so a record that does not check with
 * whole records after it is a damaged disk block: it is skipped, and the walk goes on at the next
 * offset where a record with a larger seq checks. Stopping there instead lost every record after
 * it, and the seqs never seen held the handled watermark for ever (log.ts `unhandled`).
 * `bytes` of a record counts the damaged bytes skipped before it, so segment sizes add up.
 */
export function* recordsOf(buf: Buffer, afterSeq: number, walk: Walk = { good: 0, skipped: 0 }): Generator<{ record: LogRecord; bytes: number }> {
  let last = afterSeq;
  let at = 0;
  while (at < buf.length) {
    let d: { record: LogRecord; next: number; at?: number } | null | undefined = decodeRecord(buf, at);
    if (!d) {
      d = nextWhole(buf, at + 1, last);
      if (!d) return;
      walk.skipped += d.at! - at;
    }
    const from = at;
    at = d.next;
    walk.good = at;
    last = d.record.seq;
    yield { record: d.record, bytes: at - from };
  }
}

/**
 * The first offset from `from` where a whole record with a seq after `afterSeq` decodes. The
 * length, seq and code checks come before the CRC, so damaged bytes cost a few reads each.
 */
function nextWhole(buf: Buffer, from: number, afterSeq: number): { record: LogRecord; next: number; at: number } | undefined {
  for (let p = from; p + PREFIX + RECORD_FIXED <= buf.length; p++) {
    const body = buf.readUInt32LE(p);
    if (body < RECORD_FIXED || body > MAX_RECORD || p + PREFIX + body > buf.length) continue;
    const seq = buf.readDoubleLE(p + PREFIX);
    if (!Number.isSafeInteger(seq) || seq <= afterSeq || seq > afterSeq + buf.length) continue;
    const d = decodeRecord(buf, p);
    if (d) return { ...d, at: p };
  }
  return undefined;
}

/** The seq before a segment's first record, from its file name. */
export function seqBefore(file: string): number {
  const m = NAME.exec(path.basename(file));
  return m ? Number(m[1]) - 1 : 0;
}

/** Reads every whole record of a segment file, calling `each` (damaged records are skipped: `recordsOf`). */
export async function scanSegment(file: string, each: (r: LogRecord, bytes: number) => void): Promise<{ good: number; size: number; skipped: number }> {
  const buf = await fsp.readFile(file);
  const walk: Walk = { good: 0, skipped: 0 };
  for (const { record, bytes } of recordsOf(buf, seqBefore(file), walk)) each(record, bytes);
  return { good: walk.good, size: buf.length, skipped: walk.skipped };
}

/**
 * Lists the segments of `dir`. Sealed ones come from their `.meta`; the last one is scanned and a
 * torn tail (a crash mid-write) is cut off, so appends continue after the last whole record.
 */
export async function openSegments(dir: string): Promise<{ segments: SegmentInfo[]; truncatedBytes: number; skippedBytes: number }> {
  fs.mkdirSync(dir, { recursive: true });
  const names = (await fsp.readdir(dir)).filter((n) => NAME.test(n)).sort();
  const segments: SegmentInfo[] = [];
  let truncatedBytes = 0;
  let skippedBytes = 0;
  for (let i = 0; i < names.length; i++) {
    const file = path.join(dir, names[i]!);
    const firstSeq = Number(NAME.exec(names[i]!)![1]);
    const last = i === names.length - 1;
    if (!last) {
      try {
        const m = JSON.parse(await fsp.readFile(file.replace(/\.seg$/, '.meta'), 'utf8')) as Omit<SegmentInfo, 'file' | 'sealed'>;
        segments.push({ ...m, file, sealed: true });
        continue;
      } catch {
        // no meta (a crash between the roll-over and its meta): scan it
      }
    }
    const seg = emptySegment(dir, firstSeq);
    const { good, size, skipped } = await scanSegment(file, (r, bytes) => note(seg, r.seq, r.ts, bytes));
    skippedBytes += skipped;
    if (good < size) {
      truncatedBytes += size - good;
      await fsp.truncate(file, good);
    }
    if (!last) await seal(seg);
    segments.push(seg);
  }
  return { segments, truncatedBytes, skippedBytes };
}

export async function removeSegment(seg: SegmentInfo): Promise<void> {
  await fsp.rm(seg.file, { force: true });
  await fsp.rm(seg.file.replace(/\.seg$/, '.meta'), { force: true });
}
