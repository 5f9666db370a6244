/**
 * The durable, bounded on-disk buffer the write path falls back to while the database is away:
 * append-only segment files (one JSON line per batch of points, `<n>\t[…]`, or of device events,
 * `E<n>\t[…]`) in the data dir, read back oldest first. When the bound is reached the oldest
 * segment is dropped and reported (never silently).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DeviceEvent, Point, Value } from './types.ts';

interface Segment {
  seq: number;
  file: string;
  bytes: number;
  points: number;
  events: number;
  /** batches already written to the store (in-memory progress of the drain) */
  done: number;
  /** points and events of those batches */
  donePoints: number;
  doneEvents: number;
  dropped: boolean;
}

/** One line of a segment: points or device events. */
export interface Batch {
  points: Point[];
  events: DeviceEvent[];
}

export interface BufferedBatch extends Batch {
  segment: Segment;
  index: number;
}

export interface DiskBufferOptions {
  dir: string;
  /** total bound in bytes (default 256 MiB) */
  maxBytes?: number;
  /** segment size in bytes (default 4 MiB) */
  segmentBytes?: number;
  /** called with the number of points and events dropped because the buffer was full */
  onDrop(points: number, events: number): void;
}

type Packed = [string, string, string, number, Value];
type PackedEvent = [device: string, product: string, event: string, ts: number, payload: Record<string, unknown>, msg_id: string | null, flagged: boolean, problem: string | null];

const SEG_RE = /^seg-(\d{12})\.ndjson$/;

export class DiskBuffer {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #segmentBytes: number;
  readonly #onDrop: (points: number, events: number) => void;
  #segments: Segment[] = [];
  #fd: number | undefined;
  #dirty = false;
  #syncTimer: NodeJS.Timeout | undefined;
  /** parsed batches of the segment being drained */
  #reading: { segment: Segment; batches: Batch[] } | undefined;

  constructor(opts: DiskBufferOptions) {
    this.#dir = opts.dir;
    this.#maxBytes = opts.maxBytes ?? 256 * 2 ** 20;
    this.#segmentBytes = Math.min(opts.segmentBytes ?? 4 * 2 ** 20, this.#maxBytes);
    this.#onDrop = opts.onDrop;
  }

  /** Finds segments left by an earlier run (their points are flushed first). */
  open(): void {
    fs.mkdirSync(this.#dir, { recursive: true });
    this.#segments = [];
    for (const name of fs.readdirSync(this.#dir).sort()) {
      const m = SEG_RE.exec(name);
      if (!m) continue;
      const file = path.join(this.#dir, name);
      const text = fs.readFileSync(file, 'utf8');
      let points = 0;
      let events = 0;
      for (const line of text.split('\n')) {
        const tab = line.indexOf('\t');
        if (tab <= 0) continue;
        if (line[0] === 'E') events += Number(line.slice(1, tab)) || 0;
        else points += Number(line.slice(0, tab)) || 0;
      }
      if (points + events === 0) {
        fs.rmSync(file, { force: true });
        continue;
      }
      this.#segments.push({ seq: Number(m[1]), file, bytes: Buffer.byteLength(text), points, events, done: 0, donePoints: 0, doneEvents: 0, dropped: false });
    }
    // Periodic fdatasync: a crash loses at most ~1 s of buffered batches to the page cache, not the disk.
    this.#syncTimer = setInterval(() => this.#sync(), 1000);
    this.#syncTimer.unref();
  }

  close(): void {
    clearInterval(this.#syncTimer);
    this.#sync();
    if (this.#fd !== undefined) fs.closeSync(this.#fd);
    this.#fd = undefined;
  }

  get empty(): boolean {
    return this.#segments.length === 0;
  }

  /** points not yet written to the store */
  get points(): number {
    let n = 0;
    for (const s of this.#segments) n += s.points - s.donePoints;
    return n;
  }

  /** device events not yet written to the store */
  get events(): number {
    let n = 0;
    for (const s of this.#segments) n += s.events - s.doneEvents;
    return n;
  }

  get bytes(): number {
    let n = 0;
    for (const s of this.#segments) n += s.bytes;
    return n;
  }

  #sync(): void {
    if (this.#dirty && this.#fd !== undefined) {
      try {
        fs.fdatasyncSync(this.#fd);
      } catch {
        /* the next append reports a failing disk */
      }
      this.#dirty = false;
    }
  }

  #newSegment(): Segment {
    if (this.#fd !== undefined) {
      this.#sync();
      fs.closeSync(this.#fd);
    }
    const seq = (this.#segments.at(-1)?.seq ?? 0) + 1;
    const file = path.join(this.#dir, `seg-${String(seq).padStart(12, '0')}.ndjson`);
    this.#fd = fs.openSync(file, 'a');
    const seg: Segment = { seq, file, bytes: 0, points: 0, events: 0, done: 0, donePoints: 0, doneEvents: 0, dropped: false };
    this.#segments.push(seg);
    return seg;
  }

  /** Appends one batch (a line of points, then one of events) after everything already buffered. */
  append(points: Point[], events: readonly DeviceEvent[] = []): void {
    if (points.length) {
      const packed: Packed[] = points.map((p) => [p.device, p.product, p.metric, p.ts, p.value]);
      this.#appendLine(`${points.length}\t${JSON.stringify(packed)}\n`, points.length, 0);
    }
    if (events.length) {
      const packed: PackedEvent[] = events.map((e) => [e.device, e.product, e.event, e.ts, e.payload, e.msg_id, e.flagged, e.problem]);
      this.#appendLine(`E${events.length}\t${JSON.stringify(packed)}\n`, 0, events.length);
    }
  }

  #appendLine(line: string, points: number, events: number): void {
    const size = Buffer.byteLength(line);
    let seg = this.#segments.at(-1);
    // Only the newest segment is open for appends; one being read is never appended to.
    if (!seg || this.#fd === undefined || seg.bytes + size > this.#segmentBytes || this.#reading?.segment === seg) seg = this.#newSegment();
    fs.writeSync(this.#fd!, line);
    this.#dirty = true;
    seg.bytes += size;
    seg.points += points;
    seg.events += events;
    this.#enforceBound();
  }

  #enforceBound(): void {
    let total = this.bytes;
    while (total > this.#maxBytes && this.#segments.length > 1) {
      const oldest = this.#segments.shift()!;
      oldest.dropped = true;
      if (this.#reading?.segment === oldest) this.#reading = undefined;
      fs.rmSync(oldest.file, { force: true });
      total -= oldest.bytes;
      this.#onDrop(Math.max(0, oldest.points - oldest.donePoints), Math.max(0, oldest.events - oldest.doneEvents));
    }
  }

  /** The oldest batch not yet written, or undefined when the buffer is empty. */
  next(): BufferedBatch | undefined {
    while (this.#segments.length) {
      const seg = this.#segments[0]!;
      if (!this.#reading || this.#reading.segment !== seg) {
        // Close the segment for appends before reading it whole.
        if (seg === this.#segments.at(-1) && this.#fd !== undefined) {
          this.#sync();
          fs.closeSync(this.#fd);
          this.#fd = undefined;
        }
        const batches: Batch[] = [];
        let text = '';
        try {
          text = fs.readFileSync(seg.file, 'utf8');
        } catch {
          /* removed underneath us: treated as empty */
        }
        for (const line of text.split('\n')) {
          const tab = line.indexOf('\t');
          if (tab < 0) continue;
          try {
            if (line[0] === 'E') {
              const packed = JSON.parse(line.slice(tab + 1)) as PackedEvent[];
              batches.push({ points: [], events: packed.map(([device, product, event, ts, payload, msg_id, flagged, problem]) => ({ device, product, event, ts, payload, msg_id, flagged, problem })) });
            } else {
              const packed = JSON.parse(line.slice(tab + 1)) as Packed[];
              batches.push({ points: packed.map(([device, product, metric, ts, value]) => ({ device, product, metric, ts, value })), events: [] });
            }
          } catch {
            // A torn last line (crash mid-append) is skipped; every complete line before it is kept.
          }
        }
        this.#reading = { segment: seg, batches };
      }
      if (seg.done < this.#reading.batches.length) return { segment: seg, index: seg.done, ...this.#reading.batches[seg.done]! };
      this.#finish(seg);
    }
    return undefined;
  }

  /** Marks a batch from next() as written; a finished segment's file is removed. */
  ack(batch: BufferedBatch): void {
    const seg = batch.segment;
    if (seg.dropped || batch.index !== seg.done) return;
    seg.done++;
    seg.donePoints += batch.points.length;
    seg.doneEvents += batch.events.length;
    if (this.#reading?.segment === seg && seg.done >= this.#reading.batches.length) this.#finish(seg);
  }

  #finish(seg: Segment): void {
    fs.rmSync(seg.file, { force: true });
    this.#segments = this.#segments.filter((s) => s !== seg);
    if (this.#reading?.segment === seg) this.#reading = undefined;
  }
}
