/**
 * Fenced patch: mqtt-packet's `writeToStream` as aedes resolves it (node_modules/aedes/lib/write.js
 * calls `mqtt.writeToStream(…)` through the module's exports object, at call time). Two changes:
 *
 * 1. **No packet-id cache.** mqtt-packet builds a cache of 65,536 two-byte Buffers for packet ids on
 *    its first write: ~6.8 MB of heap held for good and walked by every major GC. With
 *    `cacheNumbers = false` a packet id allocates its 2 bytes instead.
 * 2. **A PUBACK in one 4-byte write.** mqtt-packet writes it in three pieces under a cork released on
 *    the next tick, and the broker's coalescing cork (runtime/broker/guard.ts) holds it to the next
 *    turn: per QoS 1 uplink that was a writev of three buffers plus two deferred callbacks (27% of the
 *    broker thread at 12k msg/s). Other packets, and MQTT 5 acks with a reason code or properties, go
 *    through mqtt-packet as before.
 *
 * `mqttPacketWritesShape()` checks the exports and aedes' call (test/patches/upstream-shape.test.ts).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';

type Packet = { cmd: string; messageId?: number; reasonCode?: number; properties?: unknown };
type WriteToStream = ((packet: Packet, stream: Duplex, opts?: { protocolVersion?: number }) => boolean) & { cacheNumbers: boolean; fluxFastAcks?: boolean };

const aedesRequire = createRequire(import.meta.resolve('aedes'));
/** mqtt-packet as aedes resolves it; loaded on use, so that importing the patches loads no library (runtime/patches/mqtt-packet-debug.ts must come first) */
const mqttPacketExports = () => aedesRequire('mqtt-packet') as { writeToStream: WriteToStream };

/**
 * Applies both changes once per process (the exports object is shared by every broker in it).
 * `writeNow` writes a buffer at once, past any coalescing cork. Answers false when the shape differs.
 */
export function patchMqttPacketWrites(writeNow: (stream: Duplex, chunk: Buffer) => boolean): boolean {
  const mqttPacket = mqttPacketExports();
  const generic = mqttPacket.writeToStream;
  if (typeof generic !== 'function' || typeof generic.cacheNumbers !== 'boolean') return false;
  generic.cacheNumbers = false;
  if (generic.fluxFastAcks) return true;
  const writeToStream = ((packet, stream, opts) => {
    const id = packet.messageId;
    if (packet.cmd === 'puback' && typeof id === 'number' && (opts?.protocolVersion !== 5 || (packet.reasonCode === 0 && packet.properties === undefined))) {
      const ack = Buffer.allocUnsafe(4);
      ack[0] = 0x40;
      ack[1] = 2;
      ack[2] = id >> 8;
      ack[3] = id & 0xff;
      return writeNow(stream, ack);
    }
    return generic(packet, stream, opts);
  }) as WriteToStream;
  Object.defineProperty(writeToStream, 'cacheNumbers', { get: () => generic.cacheNumbers, set: (v: boolean) => (generic.cacheNumbers = v) });
  writeToStream.fluxFastAcks = true;
  mqttPacket.writeToStream = writeToStream;
  return true;
}

/** What these patches need and the installed aedes / mqtt-packet do not offer (empty: all there). */
export function mqttPacketWritesShape(): string[] {
  const missing: string[] = [];
  const mqttPacket = mqttPacketExports();
  if (typeof mqttPacket.writeToStream !== 'function') missing.push("aedes' mqtt-packet exports no writeToStream function");
  else if (typeof mqttPacket.writeToStream.cacheNumbers !== 'boolean') missing.push('writeToStream.cacheNumbers is not a boolean');
  const write = fs.readFileSync(aedesRequire.resolve('./lib/write.js'), 'utf8');
  if (!/\bmqtt\.writeToStream\(/.test(write)) missing.push('aedes/lib/write.js no longer calls mqtt.writeToStream() through the exports object');
  return missing;
}
