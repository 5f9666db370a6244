/**
 * The FLV hub of one running camera: parses ffmpeg's FLV output tag by tag and fans it out to every
 * HTTP-FLV viewer and RTMP relay. A newcomer gets the header, the codec configuration and the
 * current GOP (from the last keyframe), so its first frame decodes at once. Everything is bounded:
 * the GOP cache, the parse buffer and each viewer's unsent bytes (a slow viewer is dropped).
 */
import { EventEmitter } from 'node:events';

const TAG_AUDIO = 8;
const TAG_VIDEO = 9;
const TAG_SCRIPT = 18;
const MAX_TAG = 16 << 20;
const MAX_GOP_BYTES = 8 << 20;
const MAX_GOP_TAGS = 1000;

export interface FlvSink {
  write(chunk: Buffer): boolean;
  /** bytes accepted but not yet sent (`res.writableLength`) */
  readonly writableLength: number;
  end(): void;
  destroy?(): void;
}

export class FlvHub extends EventEmitter {
  /** unsent bytes at which a viewer is dropped */
  readonly maxBacklog: number;
  private pending: Buffer = Buffer.alloc(0);
  private header?: Buffer;
  private meta?: Buffer;
  private videoConfig?: Buffer;
  private audioConfig?: Buffer;
  private gop: Buffer[] = [];
  private gopBytes = 0;
  private lastKeyframe?: Buffer;
  /** wall clock (ms) when the last keyframe arrived */
  private lastKeyframeWall = 0;
  /** per viewer: when the first frame it was sent (the GOP's keyframe) arrived, for latency figures */
  private readonly bases = new Map<FlvSink, number>();
  private readonly sinks = new Set<FlvSink>();
  bytes = 0;
  videoTags = 0;
  ended = false;
  private announced = false;

  constructor(maxBacklog = 4 << 20) {
    super();
    this.maxBacklog = maxBacklog;
  }

  /** true once a keyframe arrived: a viewer can start */
  get ready(): boolean {
    return this.header !== undefined && this.lastKeyframe !== undefined;
  }

  viewers(): number {
    return this.sinks.size;
  }

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let off = 0;
    const buf = this.pending;
    if (!this.header) {
      if (buf.length < 13) return;
      if (buf.toString('latin1', 0, 3) !== 'FLV') throw new Error('ffmpeg output is not FLV');
      const headerSize = buf.readUInt32BE(5);
      if (buf.length < headerSize + 4) return;
      this.header = Buffer.from(buf.subarray(0, headerSize + 4));
      off = headerSize + 4;
    }
    while (buf.length - off >= 11) {
      const type = buf[off]! & 0x1f;
      const size = buf.readUIntBE(off + 1, 3);
      if (size > MAX_TAG) throw new Error(`FLV tag of ${size} bytes`);
      const total = 11 + size + 4;
      if (buf.length - off < total) break;
      const tag = Buffer.from(buf.subarray(off, off + total));
      off += total;
      this.onTag(type, tag);
    }
    this.pending = off === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(off));
  }

  private onTag(type: number, tag: Buffer): void {
    const body = tag[11] ?? 0;
    if (type === TAG_SCRIPT) {
      this.meta ??= tag;
      return;
    }
    if (type === TAG_VIDEO) {
      const isAvc = (body & 0x0f) === 7;
      if (isAvc && tag[12] === 0) {
        this.videoConfig = tag;
        return;
      }
      this.videoTags++;
      if (body >> 4 === 1) {
        this.lastKeyframe = tag;
        this.lastKeyframeWall = Date.now();
        this.gop = [];
        this.gopBytes = 0;
        if (!this.announced) {
          this.announced = true;
          this.emit('ready');
        }
      }
    } else if (type === TAG_AUDIO) {
      if ((body >> 4) === 10 && tag[12] === 0) {
        this.audioConfig = tag;
        return;
      }
    }
    if (this.lastKeyframe) {
      if (this.gopBytes + tag.length > MAX_GOP_BYTES || this.gop.length >= MAX_GOP_TAGS) {
        this.gop = [];
        this.gopBytes = 0;
      } else {
        this.gop.push(tag);
        this.gopBytes += tag.length;
      }
    }
    for (const s of this.sinks) this.send(s, tag);
  }

  private send(s: FlvSink, data: Buffer): void {
    if (s.writableLength > this.maxBacklog) {
      this.sinks.delete(s);
      this.emit('viewers', this.sinks.size);
      if (s.destroy) s.destroy();
      else s.end();
      return;
    }
    s.write(data);
  }

  /** the start a newcomer needs: header, metadata, codec configuration, the current GOP */
  private intro(): Buffer[] {
    const out: Buffer[] = [];
    if (this.header) out.push(this.header);
    if (this.meta) out.push(this.meta);
    if (this.videoConfig) out.push(this.videoConfig);
    if (this.audioConfig) out.push(this.audioConfig);
    out.push(...this.gop);
    return out;
  }

  add(s: FlvSink): () => void {
    if (this.ended) {
      s.end();
      return () => undefined;
    }
    s.write(Buffer.concat(this.intro()));
    this.sinks.add(s);
    this.bases.set(s, this.lastKeyframeWall);
    this.emit('viewers', this.sinks.size);
    return () => {
      this.bases.delete(s);
      if (this.sinks.delete(s)) this.emit('viewers', this.sinks.size);
    };
  }

  /**
   * For each viewer, when its first frame arrived here: a player at media time t shows the frame
   * that arrived at `base + t` (a live source arrives in real time), so `now - base - t` is its latency.
   */
  viewerBases(): number[] {
    return [...this.bases.values()];
  }

  /** a complete FLV holding only the latest keyframe (for a snapshot), or undefined */
  keyframeFlv(): Buffer | undefined {
    if (!this.header || !this.lastKeyframe || !this.videoConfig) return undefined;
    // header without audio, the config and the keyframe with their timestamps zeroed
    const header = Buffer.from(this.header);
    header[4] = 0x01;
    const zero = (t: Buffer) => {
      const c = Buffer.from(t);
      c.writeUIntBE(0, 4, 3);
      c[7] = 0;
      return c;
    };
    return Buffer.concat([header, zero(this.videoConfig), zero(this.lastKeyframe)]);
  }

  /** ends every viewer (the source run is over; players reconnect to the next run) */
  end(): void {
    this.ended = true;
    for (const s of this.sinks) s.end();
    this.sinks.clear();
    this.bases.clear();
    this.emit('viewers', 0);
    this.emit('end');
  }
}
