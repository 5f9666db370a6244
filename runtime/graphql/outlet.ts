/**
 * One graphql-ws socket's way out for subscription results: a frame is written only while the
 * socket's send buffer (`ws.bufferedAmount`) is under the high-water mark, so a slow client never
 * grows memory. Past it the client misses results (counted, and told in the next result it gets:
 * `extensions.dropped`); one that stays past it for `slowCloseMs` is closed with 1013 "too slow"
 * (and cut off if it does not even read the close frame).
 */
import type { WebSocket } from 'ws';

export interface OutletOptions {
  /** bytes waiting in the socket past which results are dropped (default 1 MiB) */
  highWaterBytes: number;
  /** how long a socket may stay past the mark before it is closed (default 10 s) */
  slowCloseMs: number;
  /** how long a socket closed for being slow has to read up to the close frame before it is cut off (default 2 s) */
  cutOffMs: number;
  /** counts results dropped (for /api/health and the metric) */
  onDrop(): void;
  /** a socket closed for staying too slow (for the log) */
  onSlowClose(dropped: number): void;
}

/** The close code for a client that stayed too slow (1013: try again later), as the live feed uses. */
export const SLOW_CLOSE_CODE = 1013;

export class SocketOutlet {
  readonly ws: WebSocket;
  readonly #opts: OutletOptions;
  /** results missed since the last one this socket got */
  #dropped = 0;
  #behindSince = 0;

  constructor(ws: WebSocket, opts: OutletOptions) {
    this.ws = ws;
    this.#opts = opts;
  }

  /**
   * Writes `prefix + json + '}'`: `prefix` is the subscription's `{"id":…,"type":"next","payload":`,
   * `json` the execution result its whole group shares. False when it was dropped.
   */
  deliver(prefix: string, json: string, now: number): boolean {
    const ws = this.ws;
    if (ws.readyState !== 1) return false;
    if (ws.bufferedAmount > this.#opts.highWaterBytes) {
      this.#dropped++;
      this.#opts.onDrop();
      if (!this.#behindSince) this.#behindSince = now;
      else if (now - this.#behindSince > this.#opts.slowCloseMs) this.#closeSlow();
      return false;
    }
    this.#behindSince = 0;
    if (this.#dropped) {
      // The result's JSON is an object: its closing brace makes room for the count.
      const n = this.#dropped;
      this.#dropped = 0;
      ws.send(`${prefix}${json.slice(0, -1)},"extensions":{"dropped":${n}}}}`);
      return true;
    }
    ws.send(prefix + json + '}');
    return true;
  }

  #closeSlow(): void {
    const ws = this.ws;
    this.#opts.onSlowClose(this.#dropped);
    ws.close(SLOW_CLOSE_CODE, 'too slow: results were dropped for too long');
    // A client that does not read cannot read the close frame either: cut it off soon.
    const timer = setTimeout(() => ws.terminate(), this.#opts.cutOffMs);
    timer.unref();
    ws.once('close', () => clearTimeout(timer));
  }
}
