/**
 * Fenced patch: the QoS 2 receive state of aedes 2.0.0-beta.1 (node_modules/aedes/lib/handlers/
 * publish.js and pubrel.js), pinned exactly in package.json, in whatever persistence aedes runs on.
 *
 * aedes keeps every incoming QoS 2 PUBLISH, payload included, from its arrival to its PUBREL
 * (`persistence.incomingStorePacket` … `incomingDelPacket`), and never drops what a client leaves
 * there: QoS 2 PUBLISHes with fresh packet ids and no PUBREL, or a connection closed before it,
 * stayed for good (65,535 packets of up to the maximum packet size per client id, and a device has as
 * many client ids as it likes). The stored copy only tells a resent PUBLISH or a PUBREL that the id
 * is known (aedes publishes the message when it arrives), so this
 *
 * 1. stores it without its payload,
 * 2. counts, per client id, the packet ids awaiting their PUBREL (the broker refuses a QoS 2 PUBLISH
 *    past its limit, runtime/broker/index.ts),
 * 3. deletes what a client left when its connection ends, unless its session persists (MQTT 3.1.1
 *    clean session 0, MQTT 5 a session expiry): a PUBLISH resent after the reconnect must then still be
 *    known, or it would be published twice. A clean session's state ends with its connection anyway;
 *    a persistent one keeps at most the limit, without payloads.
 *
 * `aedesQos2ReceiveShape()` checks those calls in the installed sources (test/patches/upstream-shape.test.ts).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Aedes, Client } from 'aedes';

const aedesRequire = createRequire(import.meta.resolve('aedes'));
const EMPTY = Buffer.alloc(0);

type Stored = { cmd?: string; topic?: string; qos?: number; messageId?: number; brokerId?: string; brokerCounter?: number };
type IncomingStore = {
  incomingStorePacket(client: { id: string }, packet: Stored): Promise<unknown>;
  incomingDelPacket(client: { id: string }, packet: Stored): Promise<unknown>;
};

/** The QoS 2 packet ids each client id has sent and not yet released. */
export interface Qos2Receive {
  /** whether `messageId` awaits its PUBREL from `clientId` (a resent PUBLISH) */
  awaits(clientId: string, messageId: number): boolean;
  /** how many packet ids await their PUBREL from `clientId` */
  awaiting(clientId: string): number;
}

/** Applies the patch to a started aedes (its persistence is set in listen()); undefined when the shape differs. */
export function boundQos2Receive(aedes: Aedes): Qos2Receive | undefined {
  const p = (aedes as unknown as { persistence?: IncomingStore }).persistence;
  if (!p || typeof p.incomingStorePacket !== 'function' || typeof p.incomingDelPacket !== 'function') return undefined;
  const store = p.incomingStorePacket.bind(p);
  const del = p.incomingDelPacket.bind(p);
  const pending = new Map<string, Set<number>>();
  p.incomingStorePacket = (client, packet) => {
    const id = packet.messageId;
    if (typeof id === 'number') {
      let ids = pending.get(client.id);
      if (!ids) pending.set(client.id, (ids = new Set()));
      ids.add(id);
    }
    const { cmd, topic, qos, messageId, brokerId, brokerCounter } = packet;
    return store(client, { cmd, topic, qos, messageId, brokerId, brokerCounter, payload: EMPTY } as Stored);
  };
  p.incomingDelPacket = (client, packet) => {
    const ids = pending.get(client.id);
    if (ids && typeof packet.messageId === 'number') {
      ids.delete(packet.messageId);
      if (ids.size === 0) pending.delete(client.id);
    }
    return del(client, packet);
  };
  aedes.on('clientDisconnect', (client: Client) => {
    if (!client.clean) return;
    const ids = pending.get(client.id);
    if (!ids) return;
    pending.delete(client.id);
    for (const messageId of ids) del(client, { messageId }).catch(() => undefined);
  });
  return {
    awaits: (clientId, messageId) => pending.get(clientId)?.has(messageId) ?? false,
    awaiting: (clientId) => pending.get(clientId)?.size ?? 0,
  };
}

/** What this patch relies on and the installed aedes lacks (empty: all there). */
export function aedesQos2ReceiveShape(): string[] {
  const missing: string[] = [];
  const publish = fs.readFileSync(aedesRequire.resolve('./lib/handlers/publish.js'), 'utf8');
  if (!publish.includes('persistence.incomingStorePacket(client, packet)')) missing.push('publish.js no longer stores a QoS 2 PUBLISH with persistence.incomingStorePacket');
  // the stored copy is only tested for existence: its payload is not published from it
  if (!/incomingGetPacket\(client, packet\)\s*\.then\(\(\) => \{/.test(publish)) missing.push('publish.js now uses the stored QoS 2 packet itself');
  const pubrel = fs.readFileSync(aedesRequire.resolve('./lib/handlers/pubrel.js'), 'utf8');
  if (!pubrel.includes('arg.foundInStore = !!packet') || !pubrel.includes('persistence.incomingDelPacket(this.client, arg.packet)')) missing.push('pubrel.js no longer only tests and deletes the stored QoS 2 packet');
  const broker = fs.readFileSync(aedesRequire.resolve('./aedes.js'), 'utf8');
  if (!broker.includes("this.emit('clientDisconnect', client)")) missing.push("aedes no longer emits 'clientDisconnect'");
  return missing;
}
