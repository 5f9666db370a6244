/**
 * How a device's MQTT publish becomes an uplink: appended to the durable uplink log after its topic
 * was authorised (and, for QoS 1, acknowledged only once durable), put on the bus from there, with
 * the bus's backpressure holding the device's socket.
 */
import type { Client, AedesPublishPacket, PublishPacket } from 'aedes';
import type { Counter } from 'prom-client';
import type { Tally } from '../metrics/index.ts';
import { newMessageId, type UplinkMessage } from '../bus/index.ts';
import type { DeviceIdentity } from '../registry/index.ts';
import type { UplinkJournal } from '../uplink-log/index.ts';
import { uplinkKind } from './topics.ts';

export interface UplinkHooks {
  /** from authorizePublish: append, put on the bus, and call `done` once the append is durable (QoS 1) or at once (QoS 0) */
  journalled(identity: DeviceIdentity, packet: PublishPacket, done: (err: Error | null) => void): void;
  /** aedes' `published` hook */
  published(packet: AedesPublishPacket, client: Client | null, done: (err?: Error | null) => void): void;
}

export function uplinkHooks(journal: UplinkJournal, metrics: { refused: Counter; uplinks: Tally; paused: Counter }): UplinkHooks {
/**
 * Puts an appended uplink on the bus and lets aedes go on; a bus behind holds `done`, so aedes reads
 * none of this client's next packets until it drains (the device's socket stays unread).
 *
 * It goes on the bus here, not from aedes' `published` hook: aedes publishes a QoS 1 packet only once
 * it could write the PUBACK, so a device that closed its connection while the append was on its way
 * to disk left a logged uplink nobody put on the bus, and the log's handled watermark
 * (runtime/uplink-log/log.ts) waited for it for good: nothing handled after it was ever evicted, and
 * the log filled up and refused every uplink.
 */
function deliver(up: UplinkMessage, done: (err: Error | null) => void): void {
  metrics.uplinks.add();
  if (journal.emit(up)) return done(null);
  metrics.paused.inc();
  journal.onDrain(() => done(null));
}

/**
 * A device's uplink, after its topic was authorised: appended to the uplink log, and only once
 * it is durable is it put on the bus and aedes told to go on (aedes writes the QoS 1 PUBACK right
 * after this callback).
 */
function journalled(identity: DeviceIdentity, packet: PublishPacket, done: (err: Error | null) => void): void {
  const kind = uplinkKind(identity.product.key, identity.device.id, packet.topic);
  if (!kind) return done(null);
  const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
  const up: UplinkMessage = {
    id: newMessageId(),
    deviceId: identity.device.id,
    productId: identity.product.id,
    productKey: identity.product.key,
    type: kind.type,
    eventId: kind.eventId,
    ts: Date.now(),
    payload,
    topic: packet.topic,
    transport: 'mqtt',
    logSeq: undefined,
  };
  // QoS 0 promises nothing: it is appended the same way but waits neither for the disk nor for an
  // fdatasync of its own (it is synced with the next acknowledged group or within a second), and one
  // the log refuses is dropped (counted): it gets no log position and is not put on the bus.
  const qos0 = packet.qos === 0;
  journal.append(
    up,
    (err) => {
      if (qos0) {
        if (err) metrics.refused.inc({ reason: err.code });
        return;
      }
      if (!err) return deliver(up, done);
      metrics.refused.inc({ reason: err.code });
      // MQTT 5: PUBACK with a reason and its text; MQTT 3.1.1 has none, so the connection closes and
      // the client sends it again later [MQTT-3.3.5-2]. Nothing acknowledged is lost either way.
      done(new Error(`uplink refused: ${err.message}`));
    },
    !qos0,
  );
  if (!qos0) return;
  if (up.logSeq === undefined) return done(null);
  deliver(up, done);
}

/** aedes' `published` hook: nothing to do (uplinks are on the bus already), on a fresh stack. */
function published(_packet: AedesPublishPacket, _client: Client | null, done: (err?: Error | null) => void): void {
  // done() on a fresh stack: called synchronously, mqemitter's queue drain recurses once per queued
  // packet and overflowed the stack under fan-in (bench/broker.bench.ts, docs/broker.md)
  queueMicrotask(done);
}

  return { journalled, published };
}
