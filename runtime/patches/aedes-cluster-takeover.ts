/**
 * Fenced patch: aedes 2.0.0-beta.1 in a cluster (node_modules/aedes/aedes.js `closeSameClients` and
 * `unregisterClient`, lib/client.js `close`), pinned exactly in package.json.
 *
 * A client id that connects on another node closes its connection here (`$SYS/<node>/new/clients`).
 * aedes closes it like a lost connection: for an MQTT 5 session with an expiry interval it arms the
 * expiry timer on this node, and when that fires it wipes the session from the shared persistence,
 * although the client now uses it on the other node. (A takeover within one node is protected by
 * aedes' `_takingOver`, which a takeover from another node never sets.) This clears the timer right
 * after aedes arms it: `unregisterClient` emits 'clientDisconnect' and `close` calls
 * `scheduleSessionExpiry` synchronously after it, so a microtask queued in the listener runs next.
 * `aedesClusterTakeoverShape()` checks that order in the installed sources.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Aedes, Client, AedesPublishPacket } from 'aedes';

const aedesRequire = createRequire(import.meta.resolve('aedes'));

type AedesInternals = Aedes & { clients: Record<string, Client>; clearSessionExpiry(clientId: string): void };

/**
 * Keeps the sessions of clients taken over by another node; answers false (and changes nothing)
 * when aedes has not the shape this relies on. Call it once per broker, after listen().
 */
export function keepSessionsTakenOverElsewhere(aedes: Aedes): boolean {
  const a = aedes as AedesInternals;
  if (typeof a.clearSessionExpiry !== 'function' || typeof a.clients !== 'object') return false;
  /** local client ids another node took over, until their connection here has closed (at most one per local client) */
  const movedAway = new Set<string>();
  a.subscribe(
    '$SYS/+/new/clients',
    (packet: AedesPublishPacket, done: () => void) => {
      const node = packet.topic.split('/')[1];
      const clientId = packet.payload.toString();
      if (node !== a.id && a.clients[clientId]) movedAway.add(clientId);
      done();
    },
    () => undefined,
  );
  a.on('clientDisconnect', (client: Client) => {
    if (!movedAway.delete(client.id)) return;
    const id = client.id;
    queueMicrotask(() => {
      if (!a.clients[id]) a.clearSessionExpiry(id);
    });
  });
  return true;
}

/** What of aedes this patch relies on and the installed one lacks (empty: all there). */
export function aedesClusterTakeoverShape(): string[] {
  const missing: string[] = [];
  // aedes loads here, not on import: importing the patches loads no library (mqtt-packet-debug.ts)
  const proto = (aedesRequire('aedes') as { Aedes: typeof Aedes }).Aedes.prototype as unknown as Record<string, unknown>;
  if (typeof proto.clearSessionExpiry !== 'function') missing.push('Aedes.prototype.clearSessionExpiry is not a function');
  const broker = fs.readFileSync(aedesRequire.resolve('./aedes.js'), 'utf8');
  if (!/\/new\/clients'[\s\S]{0,400}closeSameClients/.test(broker)) missing.push("aedes no longer closes a client taken over elsewhere on '$SYS/+/new/clients'");
  if (!/unregisterClient \(client\) \{\s*this\.deleteClient\(client\.id\)\s*this\.emit\('clientDisconnect', client\)/.test(broker)) missing.push("unregisterClient no longer emits 'clientDisconnect' synchronously");
  const client = fs.readFileSync(aedesRequire.resolve('./lib/client.js'), 'utf8');
  if (!/that\.broker\.unregisterClient\(that\)\s*(\/\/[^\n]*\n\s*)*that\.broker\.scheduleSessionExpiry\(that\)/.test(client)) missing.push('Client.close no longer calls scheduleSessionExpiry right after unregisterClient');
  return missing;
}
