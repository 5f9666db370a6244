/**
 * Reads of the uplink log's segments (log.ts): entries by device and receive time for
 * `GET /api/devices/{id}/raw`, and time ranges a segment at a time for a plugin replay.
 * A segment deleted by retention while it is read is skipped.
 */
import fsp from 'node:fs/promises';
import type { LogRecord } from './record.ts';
import { recordsOf, scanSegment, seqBefore, type SegmentInfo } from './segments.ts';
import type { RawQuery } from './types.ts';

/** Entries matching `q`, in seq order (newest first with `order: 'desc'`), at most `q.limit`. */
export async function readRecords(segments: readonly SegmentInfo[], q: RawQuery): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  const from = q.from ?? -Infinity, to = q.to ?? Infinity, after = q.afterSeq ?? 0, before = q.beforeSeq ?? Infinity;
  const maxBytes = q.maxBytes ?? Infinity;
  const newestFirst = q.order === 'desc';
  let taken = 0;
  const full = (n: number, bytes: number) => n >= q.limit || bytes >= maxBytes;
  for (const seg of newestFirst ? [...segments].reverse() : [...segments]) {
    if (full(out.length, taken)) break;
    if (seg.lastSeq <= after || seg.firstSeq >= before || seg.maxTs < from || seg.minTs > to) continue;
    // a segment is read forwards; newest first takes its matches from the end
    const found: LogRecord[] = [];
    let foundBytes = 0;
    await scanSegment(seg.file, (r) => {
      if ((!newestFirst && full(out.length + found.length, taken + foundBytes)) || r.seq <= after || r.seq >= before || r.ts < from || r.ts > to) return;
      if (q.deviceId !== undefined && r.deviceId !== q.deviceId) return;
      found.push(r);
      foundBytes += r.payload.length;
    }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err; // evicted while reading
    });
    for (const r of newestFirst ? found.reverse() : found) {
      if (full(out.length, taken)) break;
      out.push(r);
      taken += r.payload.length;
    }
  }
  return out;
}

/** Entries received in [from, to], in seq order, up to 4,096 at a time. */
export async function* scanRecords(segments: readonly SegmentInfo[], q: { from: number; to: number }): AsyncGenerator<LogRecord[]> {
  for (const seg of [...segments]) {
    if (seg.maxTs < q.from || seg.minTs > q.to) continue;
    let buf: Buffer;
    try {
      buf = await fsp.readFile(seg.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // evicted while reading
      continue;
    }
    // decoded a slice at a time, so the caller works on the first records while the rest wait
    let found: LogRecord[] = [];
    for (const { record } of recordsOf(buf, seqBefore(seg.file))) {
      if (record.ts >= q.from && record.ts <= q.to) found.push(record);
      if (found.length === 4096) {
        yield found;
        found = [];
      }
    }
    if (found.length) yield found;
  }
}
