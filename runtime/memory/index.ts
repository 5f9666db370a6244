/**
 * @module memory — full garbage collections at the moments FLUX knows the heap is mostly garbage:
 * once after start (runtime/cli.ts) and after a storm of device connections settles.
 *
 * Why: a connection storm (18k devices logging in) promotes everything in flight (logins, registry
 * reads, status writes) to the old generation. That garbage stays until the heap next grows, and
 * V8's own memory reducer does not step in while anything at all allocates: the same 18,000 idle
 * connections then read 10–18 KB of RSS each, depending only on when the last major GC happened
 * (docs/benchmarks.md). One GC once the storm is over makes it the live size (~6–8 KB). It is the
 * memory-reducing kind: a regular major GC freed the objects but V8 kept their pages, and RSS stayed
 * at 14–17 KB per connection (docs/benchmarks.md "Session 15").
 *
 * gc() itself is borrowed from V8 (runtime/patches/v8-gc.ts).
 */
import { performance } from 'node:perf_hooks';
import { borrowedGc } from '../patches/index.ts';

/**
 * A full, memory-reducing collection, now (a pause: ~80 ms after start, 0.6–0.7 s with 18,000 idle
 * connections on a slow host). Answers false when this V8 offers no gc().
 */
export function collectAllGarbage(): boolean {
  const gc = borrowedGc();
  if (!gc) return false;
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  return true;
}

export interface StormCompactorOptions {
  /** connections that make a storm (default 5000: fewer leave too little garbage to matter) */
  minConnections?: number;
  /** quiet time after the last connection before collecting (default 5 s) */
  quietMs?: number;
  /** at most one collection per this long (default 60 s) */
  minIntervalMs?: number;
  /**
   * Event-loop utilization over the quiet time (from the storm's last connection on) above which the
   * process counts as busy (default 0.25): a busy process allocates, so V8's own collections soon
   * take the storm's garbage too, and a full collection would only add a pause to live traffic.
   */
  busyAbove?: number;
  /** the collection (tests pass a spy) */
  collect?: () => boolean;
  /** event-loop utilization since the previous call (tests pass a stub) */
  utilization?: () => number;
  /** after a collection: the storm's connections, and how long the collection paused the process */
  onCollect?: (connections: number, pauseMs: number) => void;
  /** the storm was over but the process busy: no collection */
  onBusy?: (connections: number, utilization: number) => void;
}

function eventLoopUtilization(): () => number {
  let prev = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const u = performance.eventLoopUtilization(now, prev).utilization;
    prev = now;
    return u;
  };
}

export interface StormCompactor {
  /** a device connection was accepted */
  connected(): void;
  stop(): void;
}

/** Collects garbage once a storm of connections is over (see the module comment). */
export function createStormCompactor(opts: StormCompactorOptions = {}): StormCompactor {
  const minConnections = opts.minConnections ?? 5000;
  const quietMs = opts.quietMs ?? 5000;
  const minIntervalMs = opts.minIntervalMs ?? 60_000;
  const collect = opts.collect ?? collectAllGarbage;
  const busyAbove = opts.busyAbove ?? 0.25;
  const utilization = opts.utilization ?? eventLoopUtilization();
  let count = 0;
  let last = 0;
  let lastCollect = -Infinity;
  let timer: NodeJS.Timeout | undefined;

  const check = () => {
    timer = undefined;
    const idle = Date.now() - last;
    if (idle < quietMs) {
      timer = setTimeout(check, quietMs - idle);
      timer.unref();
      return;
    }
    const now = performance.now();
    if (now - lastCollect < minIntervalMs) {
      timer = setTimeout(check, minIntervalMs - (now - lastCollect));
      timer.unref();
      return;
    }
    const n = count;
    count = 0;
    const u = utilization();
    if (u > busyAbove) {
      opts.onBusy?.(n, u);
      return;
    }
    lastCollect = now;
    const t0 = performance.now();
    if (collect()) opts.onCollect?.(n, performance.now() - t0);
  };

  return {
    connected() {
      last = Date.now();
      if (++count < minConnections) return;
      // measured from the latest connection on: the storm itself is busy, and measured from its
      // 5,000th connection an 18,000-connection storm on a slow host read 0.89 and was never collected
      utilization();
      if (!timer) {
        timer = setTimeout(check, quietMs);
        timer.unref();
      }
    },
    stop() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}
