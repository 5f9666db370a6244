/**
 * Online status of devices across every transport (ARCHITECTURE §4: status and `last_online` follow
 * connections). A device is online while it holds at least one connection (MQTT, MQTT over
 * WebSocket/TLS, TCP); a session takeover (same client id connecting again) therefore never shows
 * it offline. Registry writes are batched while one is running (one UPDATE per status) and run one after
 * another, so a device's newest status always lands last.
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
  /** resolves when every status write started so far has landed */
  flush(): Promise<void>;
}

/** at most this many status changes go into one write */
const BATCH_MAX = 1000;

export function createPresence(ctx: FluxContext): Presence {
  const log = ctx.log.child({ module: 'presence' });
  const live = new Map<string, number>();
  // Latest change per device not written yet. A write starts at once when none is running; changes
  // arriving meanwhile wait and go together in the next one (a reconnect storm becomes a few writes,
  // a single device's change lands immediately). Writes run one after another, so the newest wins.
  const pending = new Map<string, { id: string; status: 'online' | 'offline'; at: Date }>();
  let writing: Promise<void> | undefined;
  // After a storm of logins (e.g. every device reconnecting after an outage), one GC once it is
  // over: otherwise its garbage stays resident next to the connections (runtime/memory).
  const compactor = createStormCompactor({
    onCollect: (n) => log.info({ connections: n }, 'connection storm over: collected its garbage'),
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
      .catch((err) => log.error({ err, devices: batch.length }, 'device status write failed'))
      .then(() => writeNext());
    return writing;
  }

  function record(identity: DeviceIdentity, status: 'online' | 'offline', transport: Transport, reason?: string): void {
    const id = identity.device.id;
    const at = new Date();
    pending.delete(id); // re-insert so a device's newest change goes last
    pending.set(id, { id, status, at });
    if (!writing) void writeNext();
    ctx.bus.emit('status', { deviceId: id, productId: identity.product.id, productKey: identity.product.key, status, ts: at.getTime(), transport, reason });
    log.info({ deviceId: id, transport, reason }, `device ${status}`);
  }

  return {
    connected(identity, transport) {
      compactor.connected();
      const id = identity.device.id;
      const n = (live.get(id) ?? 0) + 1;
      live.set(id, n);
      if (n === 1) record(identity, 'online', transport);
      let released = false;
      return (reason) => {
        if (released) return;
        released = true;
        const left = (live.get(id) ?? 1) - 1;
        if (left > 0) {
          live.set(id, left);
          return;
        }
        live.delete(id);
        record(identity, 'offline', transport, reason);
      };
    },
    isOnline: (id) => (live.get(id) ?? 0) > 0,
    onlineCount: () => live.size,
    async flush() {
      while (writing) await writing;
    },
  };
}

/** The process's one presence tracker, shared by the broker and the TCP ingress (service `presence`). */
export function presenceOf(ctx: FluxContext): Presence {
  let p = ctx.services.get('presence') as Presence | undefined;
  if (!p) {
    p = createPresence(ctx);
    ctx.services.set('presence', p);
  }
  return p;
}
