/**
 * Online status of devices across every transport (docs/broker.md: status and `last_online` follow
 * connections). A device is online while it holds at least one connection (MQTT, MQTT over
 * WebSocket/TLS, TCP); a session takeover (same client id connecting again) therefore never shows
 * it offline. Registry writes are batched while one is running (one UPDATE per status) and run one after
 * another, so a device's newest status always lands last.
 *
 * A gateway's connection also counts for each of its children (devices whose `gateway_id` names it):
 * a child without a connection of its own is online exactly while its gateway is. Children are read
 * once per gateway connection (the registry's cached child ids); a child attached or detached while
 * its gateway is connected follows from the gateway's next connection.
 *
 * In a cluster (runtime/cluster) a device may hold connections on several nodes (a takeover on
 * another node, MQTT here and TCP there): `SharedPresence` says whether a node's first connection
 * brought the device online cluster-wide and whether its last one took it offline, and only then is
 * the status recorded. A dead node's devices are recorded offline by a survivor (`recordRemote`).
 */
import type { FluxContext } from '../app/context.ts';
import type { DeviceIdentity } from '../registry/index.ts';
import type { StatusEvent } from '../bus/index.ts';
import { createStormCompactor } from '../memory/index.ts';

export type Transport = StatusEvent['transport'];

export interface Presence {
  /** A connection of the device was accepted; answers its release (idempotent), called when it closes. */
  connected(identity: DeviceIdentity, transport: Transport): (reason: string) => void;
  isOnline(deviceId: string): boolean;
  /** devices with at least one connection */
  onlineCount(): number;
  /** the devices this node holds, each with the transport of its first connection here */
  held(): IterableIterator<[string, Transport]>;
  /**
   * Status changes the cluster decided (runtime/cluster: a dead node's devices, a resync after an
   * outage of Redis): recorded here like any other, for registered devices this node does not hold.
   */
  recordRemote(changes: { id: string; status: 'online' | 'offline'; transport: Transport }[], reason: string): Promise<void>;
  /** resolves when every status write started so far has landed */
  flush(): Promise<void>;
}

/**
 * Presence shared between the nodes of a cluster (runtime/cluster implements it on Redis). Calls for
 * one device are answered in the order they were made.
 */
export interface SharedPresence {
  /** this node's first connection of the device: true when no node held it (it just came online) */
  held(deviceId: string, transport: Transport): Promise<boolean>;
  /** this node's last connection of the device closed: true when no node holds it now (it just went offline) */
  released(deviceId: string, transport: Transport): Promise<boolean>;
  /** per device: whether any node holds it now (what its recorded status must end up saying) */
  online(deviceIds: string[]): Promise<boolean[]>;
}

const TRANSPORTS: readonly Transport[] = ['mqtt', 'tcp', 'http', 'modbus'];

/** at most this many status changes go into one write */
const BATCH_MAX = 1000;

/** `shared`: the cluster's presence (runtime/cluster); without it this node alone decides. */
export function createPresence(ctx: FluxContext, shared?: SharedPresence): Presence {
  const log = ctx.log.child({ module: 'presence' });
  /**
   * per device: connections × 4 + the index of its first connection's transport in TRANSPORTS (a
   * number, not an object: one entry per connected device, docs/broker.md "Measurements")
   */
  const live = new Map<string, number>();
  let sharedFailures = 0;
  /** Records a change once the cluster confirms it is one; without an answer (Redis down) as this node sees it. */
  function whenShared(ask: Promise<boolean>, then: () => void): void {
    ask.then(
      (changed) => {
        if (changed) then();
      },
      (err: Error) => {
        if (sharedFailures++ % 1000 === 0) log.warn({ err: err.message, failures: sharedFailures }, 'shared presence unavailable: status recorded as this node sees it');
        then();
      },
    );
  }
  // Latest change per device not written yet. A write starts at once when none is running; changes
  // arriving meanwhile wait and go together in the next one (a reconnect storm becomes a few writes,
  // a single device's change lands immediately). Writes run one after another, so the newest wins.
  const pending = new Map<string, { id: string; status: 'online' | 'offline'; at: Date }>();
  let writing: Promise<void> | undefined;
  // After a storm of logins (e.g. every device reconnecting after an outage), one GC once it is
  // over: otherwise its garbage stays resident next to the connections (runtime/memory).
  const compactor = createStormCompactor({
    onCollect: (n, ms) => log.info({ connections: n, pause_ms: Math.round(ms) }, 'connection storm over: collected its garbage'),
    onBusy: (n, u) => log.debug({ connections: n, event_loop_utilization: u }, 'connection storm over while busy: left to V8'),
  });

  function writeNext(): Promise<void> | undefined {
    if (pending.size === 0) return (writing = undefined);
    const batch: { id: string; status: 'online' | 'offline'; at: Date }[] = [];
    for (const [id, change] of pending) {
      batch.push(change);
      pending.delete(id);
      if (batch.length >= BATCH_MAX) break;
    }
    writing = ctx.registry.devices
      .setStatuses(batch)
      .then(
        () => (shared ? correct(shared, batch) : undefined),
        (err) => log.error({ err, devices: batch.length }, 'device status write failed'),
      )
      .then(() => writeNext());
    return writing;
  }

  /**
   * In a cluster two nodes write one device's status, and their writes can land in the other order
   * than Redis decided them (a takeover: the old node's "offline" after the new node's "online").
   * So after each write the writer reads the cluster's answer and writes it again where it differs:
   * the last write to land is always followed by a read that agrees with it, so the database ends
   * with the cluster's status (test/ingress/presence-order.test.ts).
   */
  async function correct(cluster: SharedPresence, batch: { id: string; status: 'online' | 'offline' }[]): Promise<void> {
    const ids = batch.map((c) => c.id);
    const online = await cluster.online(ids).catch(() => undefined); // Redis down: the resync after it heals
    if (!online) return;
    for (let i = 0; i < batch.length; i++) {
      const id = ids[i]!;
      const status = online[i] ? 'online' : 'offline';
      if (status === batch[i]!.status || pending.has(id)) continue; // a newer change of its own follows anyway
      log.info({ deviceId: id, status }, "device status written again: another node's write landed out of order");
      pending.set(id, { id, status, at: new Date() });
    }
  }

  /** per connected gateway id: a number of its going online, so a slow read of its children cannot outlive its connection */
  const generation = new Map<string, number>();
  let generations = 0;
  /** per gateway id: the releases of its children's borrowed connections */
  const childReleases = new Map<string, ((reason: string) => void)[]>();

  async function followChildren(gateway: DeviceIdentity, transport: Transport, gen: number): Promise<void> {
    const gatewayId = gateway.device.id;
    const ids = await ctx.registry.devices.childIds(gatewayId);
    if (generation.get(gatewayId) !== gen) return;
    const releases: ((reason: string) => void)[] = [];
    childReleases.set(gatewayId, releases);
    for (const id of ids) {
      const child = ctx.registry.devices.cachedIdentity(id) ?? (await ctx.registry.devices.identity(id));
      if (generation.get(gatewayId) !== gen) return; // the gateway went offline meanwhile (its release took `releases`)
      if (child && child.device.gateway_id === gatewayId) releases.push(connect(child, transport, gatewayId));
    }
  }

  function connect(identity: DeviceIdentity, transport: Transport, viaGateway?: string): (reason: string) => void {
    compactor.connected();
    const id = identity.device.id;
    const before = live.get(id);
    const n = (before === undefined ? 0 : before >> 2) + 1;
    live.set(id, before === undefined ? 4 + TRANSPORTS.indexOf(transport) : before + 4);
    if (n === 1) {
      if (shared) whenShared(shared.held(id, transport), () => record(identity, 'online', transport, undefined, viaGateway));
      else record(identity, 'online', transport, undefined, viaGateway);
      if (identity.device.is_gateway) {
        const gen = ++generations;
        generation.set(id, gen);
        followChildren(identity, transport, gen).catch((err: Error) => log.warn({ gatewayId: id, err: err.message }, 'reading the children of a gateway failed; their status does not follow it'));
      }
    }
    let released = false;
    return (reason) => {
      if (released) return;
      released = true;
      const now = live.get(id) ?? 4 + TRANSPORTS.indexOf(transport);
      if (now >= 8) {
        live.set(id, now - 4);
        return;
      }
      live.delete(id);
      if (shared) whenShared(shared.released(id, TRANSPORTS[now & 3]!), () => record(identity, 'offline', transport, reason, viaGateway));
      else record(identity, 'offline', transport, reason, viaGateway);
      if (identity.device.is_gateway) {
        generation.delete(id);
        const children = childReleases.get(id);
        childReleases.delete(id);
        if (children) for (const r of children) r(`gateway ${id}: ${reason}`);
      }
    };
  }

  function record(identity: DeviceIdentity, status: 'online' | 'offline', transport: Transport, reason?: string, gatewayId?: string): void {
    const id = identity.device.id;
    const at = new Date();
    pending.delete(id); // re-insert so a device's newest change goes last
    pending.set(id, { id, status, at });
    if (!writing) void writeNext();
    ctx.bus.emit('status', gatewayId ? { deviceId: id, productId: identity.product.id, productKey: identity.product.key, status, ts: at.getTime(), transport, reason, gatewayId } : { deviceId: id, productId: identity.product.id, productKey: identity.product.key, status, ts: at.getTime(), transport, reason });
    log.info({ deviceId: id, transport, reason, gatewayId }, `device ${status}`);
  }

  return {
    connected: (identity, transport) => connect(identity, transport),
    isOnline: (id) => live.has(id),
    onlineCount: () => live.size,
    *held() {
      for (const [id, v] of live) yield [id, TRANSPORTS[v & 3]!];
    },
    async recordRemote(changes, reason) {
      for (const c of changes) {
        if (c.status === 'offline' && live.has(c.id)) continue; // it came back here meanwhile
        const identity = ctx.registry.devices.cachedIdentity(c.id) ?? (await ctx.registry.devices.identity(c.id).catch(() => null));
        if (identity) record(identity, c.status, c.transport, c.status === 'offline' ? reason : undefined);
      }
    },
    async flush() {
      while (writing) await writing;
    },
  };
}
