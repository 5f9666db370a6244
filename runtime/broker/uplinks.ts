/**
 * How a device's MQTT publish becomes an uplink: appended to the durable uplink log after its topic
 * was authorised (and, for QoS 1, acknowledged only once durable), then put on the bus once aedes
 * has delivered it, with the bus's backpressure holding the device's socket.
 */
import type { Client, AedesPublishPacket, PublishPacket } from 'aedes';
import type { Counter } from 'prom-client';
import type { Tally } from '../metrics/index.ts';
import { newMessageId, type UplinkMessage } from '../bus/index.ts';
import type { DeviceIdentity } from '../registry/index.ts';
import type { UplinkJournal } from '../uplink-log/index.ts';
import { uplinkKind } from './topics.ts';

/** The uplink a device's publish became, carried on the packet from authorizePublish to `published`. */
const kUplink = Symbol('flux.uplink');
type JournalledPacket = { [kUplink]?: UplinkMessage };

export interface UplinkHooks {
  /** from authorizePublish: append, and call `done` once the append is durable (QoS 1) or at once (QoS 0) */
  journalled(identity: DeviceIdentity, packet: PublishPacket, done: (err: Error | null) => void): void;
  /** aedes' `published` hook */
  published(packet: AedesPublishPacket, client: Client | null, done: (err?: Error | null) => void): void;
}

export function uplinkHooks(journal: UplinkJournal, metrics: { refused: Counter; uplinks: Tally; paused: Counter }): UplinkHooks {
/**
 * A device's uplink, after its topic was authorised: appended to the uplink log, and only once
 * it is durable is aedes told to go on (aedes writes the QoS 1 PUBACK right after this callback).
 * The uplink rides on the packet to `published`, which puts it on the bus.
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
  (packet as JournalledPacket)[kUplink] = up;
  // QoS 0 promises nothing: it is appended the same way but waits neither for the disk nor for an
  // fdatasync of its own (it is synced with the next acknowledged group or within a second), and one
  // the log refuses is dropped (counted), since `published` skips an uplink with no log position.
  const qos0 = packet.qos === 0;
  journal.append(
    up,
    (err) => {
      if (qos0) {
        if (err) metrics.refused.inc({ reason: err.code });
        return;
      }
      if (!err) return done(null);
      metrics.refused.inc({ reason: err.code });
      // MQTT 5: PUBACK with a reason and its text; MQTT 3.1.1 has none, so the connection closes and
      // the client sends it again later [MQTT-3.3.5-2]. Nothing acknowledged is lost either way.
      done(new Error(`uplink refused: ${err.message}`));
    },
    !qos0,
  );
  if (qos0) done(null);
}

/** Called after aedes delivered a publish: a device's uplink goes onto the bus; a bus behind holds this client's reading. */
function published(packet: AedesPublishPacket, _client: Client | null, done: (err?: Error | null) => void): void {
  // done() on a fresh stack: called synchronously, mqemitter's queue drain recurses once per queued
  // packet and overflowed the stack under fan-in (bench/broker.bench.ts, docs/broker.md)
  const up = (packet as JournalledPacket)[kUplink];
  if (!up || up.logSeq === undefined) return queueMicrotask(done);
  metrics.uplinks.add();
  if (journal.emit(up)) return queueMicrotask(done);
  // aedes reads this client's next packets only after done(): the device socket stays unread.
  metrics.paused.inc();
  journal.onDrain(() => done());
}

  return { journalled, published };
}
