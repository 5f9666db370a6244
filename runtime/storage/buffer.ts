/**
 * The durable, bounded on-disk buffer the write path falls back to while the database is away:
 * append-only segment files (one JSON line per batch) in the data dir, read back oldest first.
 * When the bound is reached the oldest segment is dropped and reported (never silently).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Point, Value } from './types.ts';

interface Segment {
  seq: number;
  file: string;
  bytes: number;
  points: number;
  /** batches already written to the store (in-memory progress of the drain) */
  done: number;
  dropped: boolean;
}

export interface BufferedBatch {
  segment: Segment;
  index: number;
  points: Point[];
}

export interface DiskBufferOptions {
  dir: string;
  /** total bound in bytes (default 256 MiB) */
  maxBytes?: number;
  /** segment size in bytes (default 4 MiB) */
  segmentBytes?: number;
  /** called with the number of points dropped because the buffer was full */
  onDrop(points: number): void;
}

type Packed = [string, string, string, number, Value];

const SEG_RE = /^seg-(\d{12})\.ndjson$/;

export class DiskBuffer {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #segmentBytes: number;
  readonly #onDrop: (points: number) => void;
  #segments: Segment[] = [];
  #fd: number | undefined;
  #dirty = false;
  #syncTimer: NodeJS.Timeout | undefined;
  /** parsed batches of the segment being drained */
  #reading: { segment: Segment; batches: Point[][] } | undefined;

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
      for (const line of text.split('\n')) {
        const tab = line.indexOf('\t');
        if (tab > 0) points += Number(line.slice(0, tab)) || 0;
      }
      if (points === 0) {
        fs.rmSync(file, { force: true });
        continue;
      }
      this.#segments.push({ seq: Number(m[1]), file, bytes: Buffer.byteLength(text), points, done: 0, dropped: false });
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
    for (const s of this.#segments) n += s.points - this.#countDone(s);
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
    const seg: Segment = { seq, file, bytes: 0, points: 0, done: 0, dropped: false };
    this.#segments.push(seg);
    return seg;
  }

  /** Appends one batch after everything already buffered. */
  append(points: Point[]): void {
    if (points.length === 0) return;
    const packed: Packed[] = points.map((p) => [p.device, p.product, p.metric, p.ts, p.value]);
    const line = `${points.length}\t${JSON.stringify(packed)}\n`;
    const size = Buffer.byteLength(line);
    let seg = this.#segments.at(-1);
    // Only the newest segment is open for appends; one being read is never appended to.
    if (!seg || this.#fd === undefined || seg.bytes + size > this.#segmentBytes || this.#reading?.segment === seg) seg = this.#newSegment();
    fs.writeSync(this.#fd!, line);
    this.#dirty = true;
    seg.bytes += size;
    seg.points += points.length;
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
      let lost = oldest.points;
      if (oldest.done > 0) lost = Math.max(0, oldest.points - this.#countDone(oldest));
      this.#onDrop(lost);
    }
  }

  #doneCounts = new WeakMap<Segment, number>();
  #countDone(seg: Segment): number {
    return this.#doneCounts.get(seg) ?? 0;
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
        const batches: Point[][] = [];
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
            const packed = JSON.parse(line.slice(tab + 1)) as Packed[];
            batches.push(packed.map(([device, product, metric, ts, value]) => ({ device, product, metric, ts, value })));
          } catch {
            // A torn last line (crash mid-append) is skipped; every complete line before it is kept.
          }
        }
        this.#reading = { segment: seg, batches };
      }
      if (seg.done < this.#reading.batches.length) return { segment: seg, index: seg.done, points: this.#reading.batches[seg.done]! };
      this.#finish(seg);
    }
    return undefined;
  }

  /** Marks a batch from next() as written; a finished segment's file is removed. */
  ack(batch: BufferedBatch): void {
    const seg = batch.segment;
    if (seg.dropped || batch.index !== seg.done) return;
    seg.done++;
    this.#doneCounts.set(seg, this.#countDone(seg) + batch.points.length);
    if (this.#reading?.segment === seg && seg.done >= this.#reading.batches.length) this.#finish(seg);
  }

  #finish(seg: Segment): void {
    fs.rmSync(seg.file, { force: true });
    this.#segments = this.#segments.filter((s) => s !== seg);
    if (this.#reading?.segment === seg) this.#reading = undefined;
  }
}
