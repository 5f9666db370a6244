/**
 * @module bus — the device bus: typed events between ingress (MQTT, TCP, HTTP) and the flow.
 *
 * In-process today; the interface is what a Redis-backed bus implements for multi-node mode
 * (docs/architecture.md "The uplink path"). Listeners are kept per owner and wrapped, so one that throws is logged and
 * never breaks delivery to the others (zigbee2mqtt eventBus).
 */
import { randomFillSync } from 'node:crypto';
import type { Logger } from '../log/index.ts';

/** One uplink from a device, before decoding. `payload` is the bytes exactly as received. */
export interface UplinkMessage {
  /** unique per uplink; the trace id of the message */
  id: string;
  deviceId: string;
  productId: string;
  productKey: string;
  /** `properties` for …/properties/report, `event` for …/event/{eventId}, `raw` for a TCP frame */
  type: 'properties' | 'event' | 'raw';
  eventId?: string;
  /** ms since epoch, when the platform received it */
  ts: number;
  payload: Buffer;
  topic: string;
  transport: 'mqtt' | 'tcp' | 'http' | 'modbus';
  /** its position in the durable uplink log (runtime/uplink-log), once appended */
  logSeq?: number;
  /**
   * Set by a transport that decodes on its own (Modbus: the product's register map). `flux decode`
   * passes it on as the StandardMessage without calling a plugin; `payload` then holds its JSON.
   */
  decoded?: { device_id: string; values: Record<string, number | string | boolean>; ts: number };
}

/**
 * A new uplink id: 16 hex characters, a random per-process prefix (8) and a sequence number (8).
 * The sequence lets the trace find a message's slot without a hash table (runtime/trace; a Map of
 * 20k ids churned at every uplink cost ~5% of the main thread). Ids are written into one buffer
 * and cut as a flat string: `crypto.randomUUID()` strings were ropes V8 kept at ~640 bytes each.
 */
const ID_PREFIX_LENGTH = 8;
const HEX = Buffer.from('0123456789abcdef', 'latin1');
const ID_BUFFER = Buffer.alloc(16);
randomFillSync(ID_BUFFER, 0, 4);
ID_BUFFER.write(ID_BUFFER.toString('hex', 0, 4), 0, 'latin1');
const ID_PREFIX = ID_BUFFER.toString('latin1', 0, ID_PREFIX_LENGTH);
let idSeq = 0;
export function newMessageId(): string {
  let n = (idSeq = (idSeq + 1) >>> 0);
  for (let i = 15; i >= ID_PREFIX_LENGTH; i--) {
    ID_BUFFER[i] = HEX[n & 15]!;
    n >>>= 4;
  }
  return ID_BUFFER.toString('latin1', 0, 16);
}

/** The id `newMessageId` made in this process for sequence number `seq` (the inverse of `messageSeq`). */
export function messageIdOf(seq: number): string {
  return ID_PREFIX + (seq >>> 0).toString(16).padStart(16 - ID_PREFIX_LENGTH, '0');
}

/** The sequence number of an id made by `newMessageId` in this process, else -1. */
export function messageSeq(id: string): number {
  if (id.length !== 16 || !id.startsWith(ID_PREFIX)) return -1;
  let n = 0;
  for (let i = ID_PREFIX_LENGTH; i < 16; i++) {
    const c = id.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1;
    if (d < 0) return -1;
    n = n * 16 + d;
  }
  return n;
}

export interface StatusEvent {
  deviceId: string;
  productId: string;
  productKey: string;
  status: 'online' | 'offline';
  ts: number;
  transport: 'mqtt' | 'tcp' | 'http' | 'modbus';
  reason?: string;
  /** set when the status follows this gateway's connection (a child without a connection of its own) */
  gatewayId?: string;
}

/** A camera stream's status change (runtime/stream): rules and alarms can react to "camera offline". */
export interface StreamStatusEvent {
  streamId: string;
  deviceId: string | null;
  status: 'idle' | 'starting' | 'live' | 'retrying' | 'failed';
  previous: string;
  error: string | null;
  ts: number;
}

export interface DeviceBusEvents {
  uplink: UplinkMessage;
  status: StatusEvent;
  stream: StreamStatusEvent;
}

export interface BusFilter {
  productKey?: string;
  productId?: string;
  deviceId?: string;
  type?: UplinkMessage['type'] | 'status';
}

/** What an asynchronous listener returns: a Promise, or any thenable that calls one of the callbacks once. */
export interface Settles {
  then(ok: () => void, fail: (err: unknown) => void): unknown;
}

/** A listener; one that works asynchronously returns a Promise (or thenable), and the bus counts it in flight until it settles. */
type Handler<E extends keyof DeviceBusEvents> = (event: DeviceBusEvents[E]) => void | Settles | Promise<unknown>;

export interface DeviceBus {
  /**
   * Delivers `payload` to every listener. Answers false when the pipeline is behind (too many
   * listener Promises in flight): an ingress then stops reading device sockets until `onDrain`
   * (backpressure; see docs/broker.md). The event is delivered either way. `settled` runs once every
   * listener has finished with it (at once when none works asynchronously): the uplink log's
   * "handled" (runtime/uplink-log).
   */
  emit<E extends keyof DeviceBusEvents>(event: E, payload: DeviceBusEvents[E], settled?: (payload: DeviceBusEvents[E]) => void): boolean;
  /** true while the pipeline is behind (in flight >= high-water mark, until it falls to the low-water mark) */
  behind(): boolean;
  /** Calls `cb` once the pipeline has room again (at once, asynchronously, when it is not behind). */
  onDrain(cb: () => void): void;
  /** listener Promises not settled yet */
  inFlight(): number;
  /** Subscribes `handler` for `owner`; returns the function that unsubscribes it. */
  on<E extends keyof DeviceBusEvents>(event: E, owner: object, handler: Handler<E>): () => void;
  /** Removes every listener of `owner` (an extension's or a node's stop()). */
  removeOwner(owner: object): void;
  listenerCount(event: keyof DeviceBusEvents): number;
}

export function matchesFilter(filter: BusFilter, ev: { productKey: string; productId: string; deviceId: string; type?: string }): boolean {
  if (filter.productKey && filter.productKey !== ev.productKey) return false;
  if (filter.productId && filter.productId !== ev.productId) return false;
  if (filter.deviceId && filter.deviceId !== ev.deviceId) return false;
  if (filter.type && ev.type !== undefined && filter.type !== ev.type) return false;
  return true;
}

export interface DeviceBusOptions {
  /** listener Promises in flight at which emit() starts answering false; default 10,000 */
  highWater?: number;
}

export function createDeviceBus(log: Logger, opts: DeviceBusOptions = {}): DeviceBus {
  const listeners = new Map<keyof DeviceBusEvents, Map<object, Set<Handler<any>>>>();
  const highWater = Math.max(1, opts.highWater ?? 10_000);
  const lowWater = Math.floor(highWater / 2);
  let inFlight = 0;
  let isBehind = false;
  let drainWaiters: (() => void)[] = [];
  // Settle callbacks made once per event name, not per emit (the uplink path runs this per message).
  const ok = () => release();
  const failFor = new Map<string, (err: unknown) => void>();
  const fail = (event: string) => {
    let f = failFor.get(event);
    if (!f) {
      f = (err: unknown) => {
        log.error({ err, event }, 'device bus listener failed');
        release();
      };
      failFor.set(event, f);
    }
    return f;
  };
  function release(): void {
    inFlight--;
    if (isBehind && inFlight <= lowWater) {
      isBehind = false;
      const waiters = drainWaiters;
      drainWaiters = [];
      for (const w of waiters) {
        try {
          w();
        } catch (err) {
          log.error({ err }, 'device bus drain callback failed');
        }
      }
    }
  }
  return {
    emit(event, payload, settled) {
      const byOwner = listeners.get(event);
      // with `settled`: one count for the emit itself, so that it cannot run before every listener ran
      let pending = 1;
      const one = settled && (() => --pending === 0 && settled(payload));
      if (byOwner) {
        for (const handlers of byOwner.values()) {
          for (const h of handlers) {
            try {
              const r = h(payload);
              if (r && typeof (r as Settles).then === 'function') {
                inFlight++;
                if (inFlight >= highWater) isBehind = true;
                if (one) {
                  pending++;
                  const failed = fail(event);
                  (r as Settles).then(
                    () => {
                      release();
                      one();
                    },
                    (err) => {
                      failed(err);
                      one();
                    },
                  );
                } else (r as Settles).then(ok, fail(event));
              }
            } catch (err) {
              log.error({ err, event }, 'device bus listener failed');
            }
          }
        }
      }
      one?.();
      return !isBehind;
    },
    behind: () => isBehind,
    inFlight: () => inFlight,
    onDrain(cb) {
      if (!isBehind) queueMicrotask(cb);
      else drainWaiters.push(cb);
    },
    on(event, owner, handler) {
      let byOwner = listeners.get(event);
      if (!byOwner) listeners.set(event, (byOwner = new Map()));
      let set = byOwner.get(owner);
      if (!set) byOwner.set(owner, (set = new Set()));
      set.add(handler);
      return () => {
        set.delete(handler);
        if (set.size === 0) byOwner.delete(owner);
      };
    },
    removeOwner(owner) {
      for (const byOwner of listeners.values()) byOwner.delete(owner);
    },
    listenerCount(event) {
      let n = 0;
      for (const s of listeners.get(event)?.values() ?? []) n += s.size;
      return n;
    },
  };
}
