/**
 * Between ingress and the device bus: an uplink is appended to the durable log before anyone is
 * told it arrived, goes onto the bus with its log position, and is marked handled when every bus
 * listener has finished with it (the flows' `flux device in` settles once the message left the
 * flows: stored, or failed with a reason). A restart puts what was not handled back on the bus.
 */
import type { DeviceBus, UplinkMessage } from '../bus/index.ts';
import type { Logger } from '../log/index.ts';
import type { Counter } from 'prom-client';
import { LogRefusedError, type UplinkLog } from './types.ts';
import type { LogRecord } from './record.ts';

export interface UplinkJournal {
  /**
   * Appends `up`; `durable` runs when it is on disk under the fsync policy, or with the refusal.
   * The caller emits it afterwards with `emit` (MQTT: aedes acknowledges in between).
   * `sync: false` for an uplink nobody is told of (MQTT QoS 0, a Modbus poll): `durable` runs once
   * it is written, and its fdatasync may come later (runtime/uplink-log/log.ts SYNC_EVERY_MS).
   */
  append(up: UplinkMessage, durable: (err: LogRefusedError | null) => void, sync?: boolean): void;
  /** Puts an appended uplink on the bus; answers false when the pipeline is behind (backpressure). */
  emit(up: UplinkMessage): boolean;
  /** append, then emit once durable; `acked` runs after the append (before processing). */
  accept(up: UplinkMessage, acked?: (err: LogRefusedError | null) => void): void;
  /** Puts the entries a previous run did not finish back on the bus, in order, honouring backpressure. */
  replayUnhandled(): Promise<number>;
  /**
   * Until `resume()`, emitted uplinks are held (appended, not yet on the bus): nothing is processed
   * before the flows run, and what a crash left is processed before what arrives after the start.
   */
  resume(): Promise<void>;
  /** true while the pipeline (or the hold) is full: ingress stops reading devices */
  behind(): boolean;
  /** Calls `cb` once there is room again. */
  onDrain(cb: () => void): void;
}

/** uplinks held before the flows run; past it ingress is told to wait */
const HOLD_MAX = 10_000;

export interface JournalDeps {
  log: UplinkLog;
  bus: DeviceBus;
  logger: Logger;
  refused: Counter;
}

export function createUplinkJournal({ log, bus, logger, refused }: JournalDeps): UplinkJournal {
  let held: UplinkMessage[] | null = [];
  let holdWaiters: (() => void)[] = [];
  const handled = (up: UplinkMessage) => {
    if (up.logSeq !== undefined) log.handled(up.logSeq);
  };
  let lastRefusalLog = 0;
  const refusal = (err: LogRefusedError) => {
    refused.inc({ reason: err.code });
    const now = Date.now();
    if (now - lastRefusalLog > 5000) {
      lastRefusalLog = now;
      logger.warn({ reason: err.code, stats: log.stats() }, `uplinks refused: ${err.message}`);
    }
  };
  const self: UplinkJournal = {
    append(up, durable, sync = true) {
      const seq = log.append(
        up,
        (err) => {
          if (err) refusal(err as LogRefusedError);
          durable(err as LogRefusedError | null);
        },
        sync,
      );
      if (seq > 0) up.logSeq = seq;
    },
    emit(up) {
      if (held) {
        held.push(up);
        return held.length < HOLD_MAX;
      }
      return bus.emit('uplink', up, handled);
    },
    accept(up, acked) {
      self.append(up, (err) => {
        acked?.(err);
        if (!err) self.emit(up);
      });
    },
    async replayUnhandled() {
      let n = 0;
      for await (const r of log.unhandled()) {
        const up = uplinkOfRecord(r);
        n++;
        if (!bus.emit('uplink', up, handled)) await new Promise<void>((resolve) => bus.onDrain(resolve));
      }
      return n;
    },
    async resume() {
      while (held && held.length) {
        const batch = held;
        held = [];
        for (const up of batch) if (!bus.emit('uplink', up, handled)) await new Promise<void>((resolve) => bus.onDrain(resolve));
      }
      held = null;
      const w = holdWaiters;
      holdWaiters = [];
      for (const f of w) f();
    },
    behind() {
      return bus.behind() || (held !== null && held.length >= HOLD_MAX);
    },
    onDrain(cb) {
      if (held !== null && held.length >= HOLD_MAX) holdWaiters.push(() => bus.onDrain(cb));
      else bus.onDrain(cb);
    },
  };
  return self;
}

/** A logged uplink as the bus carries it again (`logSeq` = the record's seq). */
export function uplinkOfRecord(r: LogRecord): UplinkMessage {
  const up: UplinkMessage = { id: r.id, deviceId: r.deviceId, productId: r.productId, productKey: r.productKey, type: r.type, ts: r.ts, payload: r.payload, topic: r.topic, transport: r.transport, logSeq: r.seq };
  if (r.eventId) up.eventId = r.eventId;
  const decoded = decodedBy(r);
  if (decoded) up.decoded = decoded;
  return up;
}

/**
 * A transport that decodes itself (Modbus: the register map, runtime/modbus/master.ts) logs the
 * JSON `{ values, ts }` as the payload; replayed, it is decoded again so the flows skip decode as
 * they did the first time.
 */
function decodedBy(r: LogRecord): UplinkMessage['decoded'] {
  if (r.transport !== 'modbus') return undefined;
  try {
    const p = JSON.parse(r.payload.toString()) as { values?: unknown; ts?: unknown };
    if (p.values && typeof p.values === 'object' && !Array.isArray(p.values)) {
      return { device_id: r.deviceId, values: p.values as Record<string, number | boolean>, ts: typeof p.ts === 'number' ? p.ts : r.ts };
    }
  } catch {
    // not JSON: left to the product's decoder
  }
  return undefined;
}

export { LogRefusedError };
