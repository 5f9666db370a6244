/**
 * Recordings: 10 s MPEG-TS segments named by their start time (`rec/<epoch s>.ts`), kept for the
 * stream's `retention_hours` and, across all streams, under a total size (oldest deleted first).
 * A time range plays back as an HLS VOD playlist built from the file names and times.
 */
import fs from 'node:fs';
import path from 'node:path';

export const SEGMENT_RE = /^(\d{9,11})\.ts$/;

export interface Segment {
  stream: string;
  file: string;
  start: number;
  /** last write, ms */
  end: number;
  size: number;
}

/** a segment starts at most this long before it ends (FLUX_STREAM_RECORD_SEGMENT_S is at most 600 s; a long GOP stretches one) */
const MAX_SEGMENT_MS = 3_600_000;

/**
 * The stream's segments, oldest first; with `within`, only those that can overlap it. Names are
 * filtered before anything is stat'ed: a year of retention is 3 million segments, and stat'ing them
 * all on every playlist request blocked the event loop for seconds (5 s at 200,000).
 */
export function listSegments(streamDir: string, stream: string, within?: { from: number; to: number }): Segment[] {
  const dir = path.join(streamDir, 'rec');
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: Segment[] = [];
  for (const name of names) {
    const m = SEGMENT_RE.exec(name);
    if (!m) continue;
    const start = Number(m[1]) * 1000;
    if (within && (start >= within.to || start < within.from - MAX_SEGMENT_MS)) continue;
    try {
      const st = fs.statSync(path.join(dir, name));
      out.push({ stream, file: path.join(dir, name), start, end: st.mtimeMs, size: st.size });
    } catch {
      /* deleted meanwhile */
    }
  }
  return out.sort((a, b) => a.start - b.start);
}

/** Deletes segments past retention, then the oldest until the total is under `maxBytes`. */
export function sweep(root: string, streams: { id: string; retention_hours: number }[], maxBytes: number, now = Date.now()): { deleted: number; bytes: number } {
  let deleted = 0;
  const all: Segment[] = [];
  for (const s of streams) {
    for (const seg of listSegments(path.join(root, s.id), s.id)) {
      if (seg.end < now - s.retention_hours * 3_600_000) {
        fs.rmSync(seg.file, { force: true });
        deleted++;
      } else all.push(seg);
    }
  }
  let total = all.reduce((n, s) => n + s.size, 0);
  all.sort((a, b) => a.start - b.start);
  for (const seg of all) {
    if (total <= maxBytes) break;
    fs.rmSync(seg.file, { force: true });
    total -= seg.size;
    deleted++;
  }
  return { deleted, bytes: total };
}

/**
 * The VOD playlist of [from, to] (ms). The segment still being written (changed in the last 2 s)
 * is left out; a gap between segments (a restart) gets a discontinuity tag.
 */
export function vodPlaylist(segments: Segment[], from: number, to: number, uri: (name: string) => string, now = Date.now()): { playlist: string; count: number } {
  const picked = segments.filter((s) => s.end > from && s.start < to && s.end < now - 2000 && s.size > 0).slice(0, 20_000);
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-PLAYLIST-TYPE:VOD', '#EXT-X-MEDIA-SEQUENCE:0'];
  const durations = picked.map((s) => Math.min(Math.max((s.end - s.start) / 1000, 0.1), 60));
  lines.push(`#EXT-X-TARGETDURATION:${Math.ceil(Math.max(10, ...durations))}`);
  let prevEnd = 0;
  picked.forEach((s, i) => {
    if (i > 0 && Math.abs(s.start - prevEnd) > 2500) lines.push('#EXT-X-DISCONTINUITY');
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.start).toISOString()}`);
    lines.push(`#EXTINF:${durations[i]!.toFixed(3)},`);
    lines.push(uri(path.basename(s.file)));
    prevEnd = s.end;
  });
  lines.push('#EXT-X-ENDLIST', '');
  return { playlist: lines.join('\n'), count: picked.length };
}
