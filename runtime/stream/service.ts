/**
 * The stream manager: one supervised camera process per active stream, on-demand start and idle
 * stop, RTMP relays, snapshots, the recording sweeper, and status changes to the bus and metrics.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { DeviceRepository, StreamRepository } from '../registry/index.ts';
import type { Logger } from '../log/index.ts';
import type { DeviceBus } from '../bus/index.ts';
import { counter, gauge, type MetricsRegistry } from '../metrics/index.ts';
import { FluxError } from '../errors/index.ts';
import { checkSlug, pathInside } from '../safe-id/index.ts';
import { loadStreamKeys, type StreamKeys } from './secrets.ts';
import { createStreamStore, redactRtmp, type Stream, type StreamStore } from './store.ts';
import { StreamRunner, STATUSES, DEFAULT_TIMING, type Timing, type RunnerState, type StreamStatus } from './runner.ts';
import { RtmpRelay, type PushState } from './push.ts';
import { reapLeftovers } from './process.ts';
import { RECORD_SEGMENT_S } from './ffmpeg-args.ts';
import { captureJpeg, keepSnapshot } from './snapshot.ts';
import { sweep } from './recording.ts';
import type { FlvHub } from './flv.ts';

export interface StreamServiceOptions {
  /** where streams are kept */
  streams: StreamRepository;
  /** the device a stream names must exist */
  devices: Pick<DeviceRepository, 'find'>;
  log: Logger;
  bus: DeviceBus;
  metrics: MetricsRegistry;
  dataDir: string;
  /** the ffmpeg binary */
  ffmpeg: string;
  /** on-demand streams stop this long after their last viewer */
  idleMs: number;
  /** all recordings together stay under this */
  recordMaxBytes: number;
  /** recording segment length (s); default 10 */
  recordSegmentS?: number;
  timing?: Partial<Timing>;
  /** how long a player waits for a starting stream */
  waitMs?: number;
}

export interface StreamStatusChange {
  stream_id: string;
  device_id: string | null;
  status: StreamStatus;
  previous: StreamStatus;
  error: string | null;
  ts: number;
}

export interface StreamView extends Stream {
  /** `flv_bases`: per HTTP-FLV viewer, the wall clock (ms) when its first frame arrived (latency = now − base − player time) */
  state: RunnerState & { viewers: number; pinned: boolean; pushes: PushState[]; flv_bases: number[] };
}

interface Entry {
  stream: Stream;
  runner: StreamRunner;
  relays: RtmpRelay[];
  lastAccess: number;
  pinned: boolean;
  flvViewers: number;
  waiting: number;
}

/** snapshots taken at once (each an ffmpeg process) */
const MAX_SNAPSHOTS = 4;

export class StreamService extends EventEmitter {
  readonly store: StreamStore;
  readonly keys: StreamKeys;
  readonly root: string;
  private readonly o: StreamServiceOptions;
  private readonly timing: Timing;
  private readonly entries = new Map<string, Entry>();
  private readonly pidDir: string;
  private idleTimer?: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;
  private snapshots = 0;
  private started = false;
  private readonly m;

  constructor(o: StreamServiceOptions) {
    super();
    this.o = o;
    this.timing = { ...DEFAULT_TIMING, ...o.timing };
    this.root = path.join(o.dataDir, 'streams');
    this.pidDir = path.join(this.root, '.pids');
    this.keys = loadStreamKeys(o.dataDir);
    this.store = createStreamStore(o.streams, o.devices, this.keys);
    this.m = {
      status: gauge(o.metrics, 'flux_stream_status', 'camera stream status (1 for the current one)', ['stream', 'status']),
      restarts: counter(o.metrics, 'flux_stream_restarts_total', 'camera processes restarted by the supervisor', ['stream']),
      viewers: gauge(o.metrics, 'flux_stream_flv_viewers', 'HTTP-FLV viewers and RTMP relays attached', ['stream']),
      push: gauge(o.metrics, 'flux_stream_push_live', 'RTMP push targets live (1) or not (0)', ['stream', 'target']),
      bytes: counter(o.metrics, 'flux_stream_bytes_total', 'bytes read from camera processes', ['stream']),
    };
  }

  get name(): string {
    return 'streams';
  }

  async start(): Promise<void> {
    fs.mkdirSync(this.root, { recursive: true });
    const reaped = reapLeftovers(this.pidDir);
    if (reaped) this.o.log.warn({ reaped }, 'killed ffmpeg processes left by an earlier run');
    this.started = true;
    for (const s of await this.store.list()) this.entry(s);
    this.reconcile();
    this.idleTimer = setInterval(() => this.reconcile(), 1000);
    this.idleTimer.unref();
    this.sweepTimer = setInterval(() => void this.sweep(), 60_000);
    this.sweepTimer.unref();
    void this.sweep();
  }

  async stop(): Promise<void> {
    this.started = false;
    clearInterval(this.idleTimer);
    clearInterval(this.sweepTimer);
    await Promise.all([...this.entries.values()].map((e) => this.halt(e)));
  }

  health(): { ok: boolean; [k: string]: unknown } {
    const counts: Record<string, number> = {};
    for (const e of this.entries.values()) counts[e.runner.statusNow] = (counts[e.runner.statusNow] ?? 0) + 1;
    return { ok: true, streams: this.entries.size, ...counts };
  }

  /** the stream's folder (its id checked as a slug, the path checked to stay inside) */
  dir(id: string): string {
    return pathInside(this.root, checkSlug('stream', id));
  }

  private entry(stream: Stream): Entry {
    let e = this.entries.get(stream.id);
    if (e) {
      e.stream = stream;
      return e;
    }
    const id = stream.id;
    const runner = new StreamRunner({
      id,
      dir: this.dir(id),
      ffmpeg: this.o.ffmpeg,
      pidDir: this.pidDir,
      log: this.o.log,
      timing: this.timing,
      recordSegmentS: this.o.recordSegmentS ?? RECORD_SEGMENT_S,
      load: async () => ({ stream: this.entries.get(id)?.stream ?? stream, source: await this.store.source(id) }),
      onStatus: (ch) => this.onStatus(id, ch.status, ch.previous, ch.error),
      onHub: (hub) => this.onHub(id, hub),
      onRestart: () => this.m.restarts.inc({ stream: id }),
    });
    e = { stream, runner, relays: [], lastAccess: 0, pinned: false, flvViewers: 0, waiting: 0 };
    this.entries.set(id, e);
    for (const st of STATUSES) this.m.status.set({ stream: id, status: st }, st === 'idle' ? 1 : 0);
    return e;
  }

  private onStatus(id: string, status: StreamStatus, previous: StreamStatus, error: string | null): void {
    const e = this.entries.get(id);
    for (const st of STATUSES) this.m.status.set({ stream: id, status: st }, st === status ? 1 : 0);
    const change: StreamStatusChange = { stream_id: id, device_id: e?.stream.device_id ?? null, status, previous, error, ts: Date.now() };
    this.o.log.info({ stream: id, status, previous, error }, 'stream status');
    this.o.bus.emit('stream', { streamId: id, deviceId: change.device_id, status, previous, error, ts: change.ts });
    this.emit('status', change);
  }

  private onHub(id: string, hub: FlvHub): void {
    const e = this.entries.get(id);
    if (!e) return;
    let counted = 0;
    hub.on('viewers', (n: number) => (e.flvViewers = n));
    const bytes = setInterval(() => {
      this.m.bytes.inc({ stream: id }, hub.bytes - counted);
      counted = hub.bytes;
      this.m.viewers.set({ stream: id }, hub.viewers());
    }, 5000);
    bytes.unref();
    hub.once('end', () => {
      clearInterval(bytes);
      this.m.bytes.inc({ stream: id }, hub.bytes - counted);
      e.flvViewers = 0;
    });
    for (const r of e.relays) r.attach(hub);
  }

  /** Should the camera run? Pinned, always-on, recording, pushing, or watched lately. */
  private wanted(e: Entry, now: number): boolean {
    const s = e.stream;
    return e.pinned || !s.on_demand || s.record || s.rtmp_push.length > 0 || e.flvViewers > 0 || e.waiting > 0 || now - e.lastAccess < this.o.idleMs;
  }

  private reconcile(): void {
    if (!this.started) return;
    const now = Date.now();
    for (const e of this.entries.values()) {
      const want = this.wanted(e, now);
      if (want && !e.runner.running) this.run(e);
      else if (!want && e.runner.running) void this.halt(e);
    }
  }

  private run(e: Entry): void {
    if (e.relays.length === 0 && e.stream.rtmp_push.length > 0) {
      void this.store.source(e.stream.id).then(
        (src) => {
          if (e.relays.length || !e.runner.running) return;
          e.relays = src.rtmp_push.map(
            (target) =>
              new RtmpRelay({
                target,
                display: redactRtmp(target),
                ffmpeg: this.o.ffmpeg,
                pidDir: this.pidDir,
                log: this.o.log,
                onStatus: (st) => this.m.push.set({ stream: e.stream.id, target: st.target }, st.status === 'live' ? 1 : 0),
              }),
          );
          if (e.runner.hub && !e.runner.hub.ended) for (const r of e.relays) r.attach(e.runner.hub);
        },
        () => undefined,
      );
    }
    e.runner.start();
  }

  private async halt(e: Entry): Promise<void> {
    const relays = e.relays;
    e.relays = [];
    await Promise.all([...relays.map((r) => r.stop()), e.runner.stop()]);
  }

  private get(id: string): Entry {
    const e = this.entries.get(checkSlug('stream', id));
    if (!e) throw new FluxError('not_found', `stream '${id}' not found`, 404);
    return e;
  }

  view(id: string): StreamView {
    const e = this.get(id);
    const hub = e.runner.hub && !e.runner.hub.ended ? e.runner.hub : undefined;
    return { ...e.stream, state: { ...e.runner.state(), viewers: e.flvViewers, pinned: e.pinned, pushes: e.relays.map((r) => r.state()), flv_bases: hub?.viewerBases() ?? [] } };
  }

  list(): StreamView[] {
    return [...this.entries.keys()].sort().map((id) => this.view(id));
  }

  /** after a create or update in the store */
  async changed(stream: Stream, restart: boolean): Promise<void> {
    const e = this.entry(stream);
    if (restart && e.runner.running) {
      await this.halt(e);
    }
    this.reconcile();
  }

  async removed(id: string): Promise<void> {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    await this.halt(e);
    for (const st of STATUSES) this.m.status.remove({ stream: id, status: st });
    for (const m of [this.m.restarts, this.m.viewers, this.m.bytes]) m.remove({ stream: id });
    fs.rmSync(this.dir(id), { recursive: true, force: true });
  }

  /** a viewer's request: keeps an on-demand stream running for the idle time */
  touch(id: string): Entry {
    const e = this.get(id);
    e.lastAccess = Date.now();
    if (this.started && !e.runner.running) this.run(e);
    return e;
  }

  /** flow or API control: `start` keeps the stream running until `stop` */
  startPinned(id: string): StreamView {
    const e = this.get(id);
    e.pinned = true;
    this.touch(id);
    return this.view(id);
  }

  async stopPinned(id: string): Promise<StreamView> {
    const e = this.get(id);
    e.pinned = false;
    e.lastAccess = 0;
    if (!this.wanted(e, Date.now()) && e.runner.running) await this.halt(e);
    return this.view(id);
  }

  /** waits (bounded) for the stream's first keyframe; throws 504/503 with the last error */
  async waitLive(id: string, timeoutMs = this.o.waitMs ?? 20_000): Promise<FlvHub> {
    const e = this.touch(id);
    const deadline = Date.now() + timeoutMs;
    e.waiting++;
    try {
      while (Date.now() < deadline) {
        const hub = e.runner.hub;
        if (hub && hub.ready && !hub.ended) return hub;
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      e.waiting--;
      e.lastAccess = Date.now();
    }
    const st = e.runner.state();
    throw new FluxError('stream_not_ready', `stream '${id}' is not live after ${Math.round(timeoutMs / 1000)} s (status ${st.status}${st.last_error ? `: ${st.last_error}` : ''})`, 504);
  }

  /** waits (bounded) for the live HLS playlist to exist */
  async waitPlaylist(id: string, timeoutMs = this.o.waitMs ?? 20_000): Promise<string> {
    const file = path.join(this.dir(id), 'live', 'index.m3u8');
    const e = this.touch(id);
    const deadline = Date.now() + timeoutMs;
    e.waiting++;
    try {
      while (Date.now() < deadline) {
        if (e.runner.statusNow === 'live') {
          try {
            return await fs.promises.readFile(file, 'utf8');
          } catch {
            /* not written yet */
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      e.waiting--;
      e.lastAccess = Date.now();
    }
    const st = e.runner.state();
    throw new FluxError('stream_not_ready', `stream '${id}' has no playlist after ${Math.round(timeoutMs / 1000)} s (status ${st.status}${st.last_error ? `: ${st.last_error}` : ''})`, 504);
  }

  /** the latest keyframe of a running stream as JPEG, or a one-shot capture from the camera */
  async snapshot(id: string, timeoutMs = 15_000): Promise<Buffer> {
    const e = this.get(id);
    if (this.snapshots >= MAX_SNAPSHOTS) throw new FluxError('busy', 'too many snapshots in progress; retry shortly', 503);
    this.snapshots++;
    try {
      const hub = e.runner.hub;
      const flv = hub && !hub.ended ? hub.keyframeFlv() : undefined;
      if (flv) return await captureJpeg(this.o.ffmpeg, this.pidDir, undefined, flv, 5000);
      const src = await this.store.source(id);
      return await captureJpeg(this.o.ffmpeg, this.pidDir, src.url, undefined, timeoutMs);
    } finally {
      this.snapshots--;
    }
  }

  /**
   * A snapshot kept on disk (the newest MAX_KEPT_SNAPSHOTS per stream, snapshot.ts) with a signed URL to exactly
   * this picture: what flows attach to a webhook or a message.
   */
  async saveSnapshot(id: string, ttlMs = 3_600_000): Promise<{ jpeg: Buffer; file: string; url: string; ts: number }> {
    const jpeg = await this.snapshot(id);
    const { file, ts } = keepSnapshot(pathInside(this.dir(id), 'snap'), jpeg);
    return { jpeg, file, ts, url: this.signedPath(id, `/snapshots/${file}`, ttlMs) };
  }

  /** `/api/streams/<id><suffix>?sig=…`, valid `ttlMs` */
  signedPath(id: string, suffix: string, ttlMs: number): string {
    return `/api/streams/${checkSlug('stream', id)}${suffix}?sig=${encodeURIComponent(this.keys.sign(id, Date.now() + ttlMs))}`;
  }

  private async sweep(): Promise<void> {
    try {
      const streams = [...this.entries.values()].map((e) => e.stream);
      const r = sweep(this.root, streams, this.o.recordMaxBytes);
      if (r.deleted) this.o.log.info(r, 'recording segments deleted (retention or size bound)');
    } catch (err) {
      this.o.log.error({ err }, 'recording sweep failed');
    }
  }

  /** forces a sweep now (tests, and after a settings change) */
  sweepNow(): void {
    void this.sweep();
  }
}
