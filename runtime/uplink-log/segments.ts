/**
 * Segment files of the uplink log: `<first seq, 16 digits>.seg` holds records in seq order; a
 * sealed segment has a `.meta` beside it (its seq and time range), so a start reads only the open
 * segment, never the whole log.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { decodeRecord, type LogRecord } from './record.ts';

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

/** Reads every record of a segment file, calling `each`; answers the offset after the last whole record. */
export async function scanSegment(file: string, each: (r: LogRecord, bytes: number) => void): Promise<{ good: number; size: number }> {
  const buf = await fsp.readFile(file);
  let at = 0;
  for (;;) {
    const d = decodeRecord(buf, at);
    if (!d) break;
    each(d.record, d.next - at);
    at = d.next;
  }
  return { good: at, size: buf.length };
}

/**
 * Lists the segments of `dir`. Sealed ones come from their `.meta`; the last one is scanned and a
 * torn tail (a crash mid-write) is cut off, so appends continue after the last whole record.
 */
export async function openSegments(dir: string): Promise<{ segments: SegmentInfo[]; truncatedBytes: number }> {
  fs.mkdirSync(dir, { recursive: true });
  const names = (await fsp.readdir(dir)).filter((n) => NAME.test(n)).sort();
  const segments: SegmentInfo[] = [];
  let truncatedBytes = 0;
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
    const { good, size } = await scanSegment(file, (r, bytes) => note(seg, r.seq, r.ts, bytes));
    if (good < size) {
      truncatedBytes += size - good;
      await fsp.truncate(file, good);
    }
    if (!last) await seal(seg);
    segments.push(seg);
  }
  return { segments, truncatedBytes };
}

export async function removeSegment(seg: SegmentInfo): Promise<void> {
  await fsp.rm(seg.file, { force: true });
  await fsp.rm(seg.file.replace(/\.seg$/, '.meta'), { force: true });
}
