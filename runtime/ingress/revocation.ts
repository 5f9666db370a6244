/**
 * Revoked device access (docs/broker.md "When access is revoked"): after a device was disabled,
 * deleted or given a new secret (through this node's API, or another node's: its change notice,
 * runtime/cluster/changes.ts), the connections the device holds on this node are closed. Each
 * transport lists the connections it holds of a device with the stamp of the secret each presented
 * (`DeviceRepository.credential`); the device is read once, fresh (the write dropped its cached
 * identity), and a connection is closed when the device is gone, disabled, or its secret is no
 * longer the one the connection presented. Closing releases its presence: the device goes offline
 * (unless another connection of it still holds), and a reconnect is refused at authentication.
 */
import type { Logger } from '../log/index.ts';
import { counter, type MetricsRegistry } from '../metrics/index.ts';
import type { DeviceAccess } from '../registry/index.ts';

export type Revocation = 'device deleted' | 'device disabled' | 'secret rotated';

/** One connection a device holds on this node, as a transport shows it for a revocation. */
export interface HeldConnection {
  /** the stamp of the secret it authenticated with; undefined when it presented none (a TCP device named by its plugin's decode) */
  stamp: string | undefined;
  /** closes it, telling the device why where its protocol can (MQTT 5 DISCONNECT) */
  close(reason: Revocation): void;
}

/** A transport's side: the connections of one device on this node (none: an empty array). */
export interface ConnectionHolder {
  heldBy(deviceId: string): HeldConnection[];
  /** the devices holding a connection on this node, for a sweep */
  heldDevices(): Iterable<string>;
}

export interface Revoker {
  /** Closes the device's connections on this node whose access no longer holds; answers how many were closed. */
  check(deviceId: string): Promise<number>;
  /**
   * Checks every device connected here (a few at a time): after this node may have missed change
   * notices (Redis was away, runtime/cluster/changes.ts), a device revoked meanwhile loses its
   * connections here too. Answers how many were closed.
   */
  sweep(): Promise<number>;
}

/** registry reads a sweep keeps in flight */
const SWEEP_CONCURRENCY = 8;

export interface RevokerDeps {
  devices: { access(id: string): Promise<DeviceAccess | null> };
  holders: () => ConnectionHolder[];
  log: Logger;
  metrics: MetricsRegistry;
}

/** Why `held` may no longer stay open, or null when it may. */
export function revocationOf(access: DeviceAccess | null, held: Pick<HeldConnection, 'stamp'>): Revocation | null {
  if (!access) return 'device deleted';
  if (!access.identity.device.enabled) return 'device disabled';
  if (held.stamp !== undefined && held.stamp !== access.stamp) return 'secret rotated';
  return null;
}

export function createRevoker(deps: RevokerDeps): Revoker {
  const revoked = counter(deps.metrics, 'flux_device_connections_revoked_total', 'device connections closed because the device was disabled, deleted or given a new secret', ['reason']);
  const self: Revoker = {
    async check(deviceId) {
      const held = deps.holders().flatMap((h) => h.heldBy(deviceId));
      // most device writes (a rename, tags) concern devices with no connection here: no read then
      if (held.length === 0) return 0;
      const access = await deps.devices.access(deviceId);
      let closed = 0;
      for (const c of held) {
        const reason = revocationOf(access, c);
        if (!reason) continue;
        deps.log.info({ deviceId, reason }, 'closing a connection of a device whose access was revoked');
        c.close(reason);
        revoked.inc({ reason: reason.replace(' ', '_') });
        closed++;
      }
      return closed;
    },
    async sweep() {
      const ids = [...new Set(deps.holders().flatMap((h) => [...h.heldDevices()]))];
      let closed = 0;
      let next = 0;
      const worker = async () => {
        while (next < ids.length) closed += await self.check(ids[next++]!);
      };
      await Promise.all(Array.from({ length: Math.min(SWEEP_CONCURRENCY, ids.length) }, worker));
      if (closed) deps.log.warn({ checked: ids.length, closed }, 'closed connections of devices revoked while this node may have missed the change (Redis was away)');
      return closed;
    },
  };
  return self;
}
