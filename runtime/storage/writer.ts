/**
 * The write path's single writer: batches of points and device events from every `flux store` node
 * go to the store one at a time (so they land in order), or to the on-disk buffer while the store is
 * unreachable; one loop drains the buffer, oldest first, when the store answers again. Bad data is
 * bisected out and counted.
 */
import type { Logger } from '../log/index.ts';
import type { MetricsRegistry } from '../metrics/index.ts';
import { counter, gauge, histogram } from '../metrics/index.ts';
import { DiskBuffer } from './buffer.ts';
import { DataError, type DeviceEvent, type Point, type TimeSeriesStore } from './types.ts';

export interface WriterOptions {
  store: TimeSeriesStore;
  bufferDir: string;
  log: Logger;
  metrics: MetricsRegistry;
  /** on-disk buffer bound (default 256 MiB) */
  bufferMaxBytes?: number;
  bufferSegmentBytes?: number;
  /** points handed to one store.write (default 5000) */
  maxBatch?: number;
  /** points waiting in memory before they spill to disk (default 100,000) */
  maxQueue?: number;
  /** how often an unreachable store is probed (default 1000 ms) */
  retryMs?: number;
}

export interface WriterStats {
  up: boolean;
  queued: number;
  buffered_points: number;
  /** device events waiting in the on-disk buffer */
  buffered_events: number;
  buffered_bytes: number;
  written: number;
  events_written: number;
  dropped: number;
  events_dropped: number;
  last_error?: string;
}

interface Pending {
  points: Point[];
  events: DeviceEvent[];
  resolve: () => void;
}

export class StoreWriter {
  readonly #store: TimeSeriesStore;
  readonly #buffer: DiskBuffer;
  readonly #log: Logger;
  readonly #maxBatch: number;
  readonly #maxQueue: number;
  readonly #retryMs: number;
  #queue: Pending[] = [];
  #queued = 0;
  #up = true;
  #stopped = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #written = 0;
  #dropped = 0;
  #eventsWritten = 0;
  #eventsDropped = 0;
  #lastError: string | undefined;
  readonly #m;

  constructor(opts: WriterOptions) {
    this.#store = opts.store;
    this.#log = opts.log;
    this.#maxBatch = opts.maxBatch ?? 5000;
    this.#maxQueue = opts.maxQueue ?? 100_000;
    this.#retryMs = opts.retryMs ?? 1000;
    const r = opts.metrics;
    this.#m = {
      written: counter(r, 'flux_storage_points_written_total', 'Points written to the time-series store'),
      buffered: counter(r, 'flux_storage_points_buffered_total', 'Points written to the on-disk buffer while the store was unreachable'),
      dropped: counter(r, 'flux_storage_points_dropped_total', 'Points lost: buffer full (oldest dropped) or refused by the database as invalid', ['reason']),
      events: counter(r, 'flux_storage_events_stored_total', 'Device events stored'),
      eventsBuffered: counter(r, 'flux_storage_events_buffered_total', 'Device events written to the on-disk buffer while the store was unreachable'),
      eventsDropped: counter(r, 'flux_storage_events_dropped_total', 'Device events lost: buffer full (oldest dropped) or refused by the database as invalid', ['reason']),
      bufferEvents: gauge(r, 'flux_storage_buffer_events', 'Device events waiting in the on-disk buffer'),
      bufferPoints: gauge(r, 'flux_storage_buffer_points', 'Points waiting in the on-disk buffer'),
      bufferBytes: gauge(r, 'flux_storage_buffer_bytes', 'Size of the on-disk buffer'),
      up: gauge(r, 'flux_storage_up', '1 while the time-series store accepts writes'),
      seconds: histogram(r, 'flux_storage_write_seconds', 'Time of one batch write to the store', [], [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5]),
    };
    this.#buffer = new DiskBuffer({
      dir: opts.bufferDir,
      maxBytes: opts.bufferMaxBytes,
      segmentBytes: opts.bufferSegmentBytes,
      onDrop: (n, e) => {
        this.#dropped += n;
        this.#eventsDropped += e;
        if (n) this.#m.dropped.inc({ reason: 'buffer_full' }, n);
        if (e) this.#m.eventsDropped.inc({ reason: 'buffer_full' }, e);
        this.#log.error({ points: n, events: e, bufferDir: opts.bufferDir }, `time-series buffer full: dropped the oldest ${n} points and ${e} events`);
      },
    });
  }

  start(): void {
    this.#buffer.open();
    if (!this.#buffer.empty) this.#log.warn({ points: this.#buffer.points, events: this.#buffer.events }, 'time-series buffer holds points or events from an earlier run; flushing them first');
    this.#m.up.set(1);
    this.#gauges();
    this.#loop = this.#run();
  }

  /** Resolves once the points and device events are stored or safely in the on-disk buffer. */
  write(points: Point[], events: DeviceEvent[] = []): Promise<void> {
    if (points.length === 0 && events.length === 0) return Promise.resolve();
    if (this.#stopped || (!this.#up && this.#queue.length === 0)) {
      this.#toBuffer(points, events);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      this.#queue.push({ points, events, resolve });
      this.#queued += points.length + events.length;
      // A slow store must not grow memory without bound: past the limit the queue goes to disk.
      if (this.#queued > this.#maxQueue) this.#spill();
      this.#wake?.();
    });
  }

  /** Waits until everything queued so far is stored or buffered. */
  async flush(): Promise<void> {
    while (this.#queue.length && !this.#stopped) await new Promise((r) => setTimeout(r, 2));
  }

  stats(): WriterStats {
    return {
      up: this.#up,
      queued: this.#queued,
      buffered_points: this.#buffer.points,
      buffered_events: this.#buffer.events,
      buffered_bytes: this.#buffer.bytes,
      written: this.#written,
      events_written: this.#eventsWritten,
      dropped: this.#dropped,
      events_dropped: this.#eventsDropped,
      ...(this.#lastError ? { last_error: this.#lastError } : {}),
    };
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#wake?.();
    await this.#loop;
    // Whatever is still queued is kept on disk for the next start.
    this.#spill();
    this.#buffer.close();
  }

  #toBuffer(points: Point[], events: DeviceEvent[]): void {
    this.#buffer.append(points, events);
    if (points.length) this.#m.buffered.inc(points.length);
    if (events.length) this.#m.eventsBuffered.inc(events.length);
    this.#gauges();
  }

  #spill(): void {
    const q = this.#queue;
    this.#queue = [];
    this.#queued = 0;
    for (const p of q) {
      this.#toBuffer(p.points, p.events);
      p.resolve();
    }
  }

  #gauges(): void {
    this.#m.bufferPoints.set(this.#buffer.points);
    this.#m.bufferEvents.set(this.#buffer.events);
    this.#m.bufferBytes.set(this.#buffer.bytes);
  }

  #down(err: unknown): void {
    const msg = (err as Error).message ?? String(err);
    if (this.#up) this.#log.error({ err: msg }, 'time-series store unreachable: buffering writes on disk');
    this.#up = false;
    this.#lastError = msg;
    this.#m.up.set(0);
  }

  #idle(ms?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(() => done(), ms);
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
    });
  }

  /** Writes a buffered batch (points or events); bad ones are found by halving and dropped with a count. Throws only transient errors. */
  async #store_(points: Point[], events: DeviceEvent[]): Promise<void> {
    if (points.length) await this.#storePoints(points);
    if (events.length) await this.#storeEvents(events);
  }

  async #storeEvents(events: DeviceEvent[]): Promise<void> {
    try {
      await this.#store.writeEvents(events);
      this.#eventsWritten += events.length;
      this.#m.events.inc(events.length);
    } catch (err) {
      if (!(err instanceof DataError)) throw err;
      if (events.length === 1) {
        this.#eventsDropped++;
        this.#m.eventsDropped.inc({ reason: 'invalid' });
        this.#log.warn({ err: err.message, device: events[0]!.device, event: events[0]!.event }, 'time-series store refused a device event; dropped it');
        return;
      }
      const half = events.length >> 1;
      await this.#storeEvents(events.slice(0, half));
      await this.#storeEvents(events.slice(half));
    }
  }

  async #storePoints(points: Point[]): Promise<void> {
    const end = this.#m.seconds.startTimer();
    try {
      await this.#store.write(points);
      end();
      this.#written += points.length;
      this.#m.written.inc(points.length);
    } catch (err) {
      if (!(err instanceof DataError)) throw err;
      if (points.length === 1) {
        this.#dropped++;
        this.#m.dropped.inc({ reason: 'invalid' });
        this.#log.warn({ err: err.message, device: points[0]!.device, metric: points[0]!.metric }, 'time-series store refused a value; dropped it');
        return;
      }
      const half = points.length >> 1;
      await this.#storePoints(points.slice(0, half));
      await this.#storePoints(points.slice(half));
    }
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      if (!this.#up) {
        try {
          await this.#store.ping();
          this.#up = true;
          this.#m.up.set(1);
          this.#log.info({ buffered: this.#buffer.points, events: this.#buffer.events }, 'time-series store reachable again: flushing the buffer in order');
        } catch (err) {
          this.#lastError = (err as Error).message;
          this.#spill();
          await this.#idle(this.#retryMs);
          continue;
        }
      }
      if (!this.#buffer.empty) {
        // Newer batches queue behind the buffered ones, on disk, so everything lands in order.
        this.#spill();
        const batch = this.#buffer.next();
        if (!batch) continue;
        try {
          await this.#store_(batch.points, batch.events);
          this.#buffer.ack(batch);
          this.#gauges();
          if (this.#buffer.empty) this.#log.info('time-series buffer flushed');
        } catch (err) {
          this.#down(err);
        }
        continue;
      }
      if (this.#queue.length === 0) {
        await this.#idle();
        continue;
      }
      const take: Pending[] = [];
      let n = 0;
      const size = (p: Pending) => p.points.length + p.events.length;
      while (this.#queue.length && (n === 0 || n + size(this.#queue[0]!) <= this.#maxBatch)) {
        const p = this.#queue.shift()!;
        take.push(p);
        n += size(p);
      }
      this.#queued -= n;
      const points = take.length === 1 ? take[0]!.points : take.flatMap((p) => p.points);
      const events = take.length === 1 ? take[0]!.events : take.some((p) => p.events.length) ? take.flatMap((p) => p.events) : [];
      // Points first, then events: what failed (and everything after it) goes to the buffer; points
      // already stored are not buffered again.
      let pointsStored = false;
      try {
        if (points.length) await this.#storePoints(points);
        pointsStored = true;
        if (events.length) await this.#storeEvents(events);
      } catch (err) {
        this.#down(err);
        this.#toBuffer(pointsStored ? [] : points, events);
      }
      for (const p of take) p.resolve();
    }
  }
}
