/**
 * @module ownership — who a decoded message belongs to. The platform decides, not the payload: a
 * message whose `device_id` is not its sender's is accepted only when the sender is a gateway and the
 * id names one of its registered children (or the gateway's product auto-registers children).
 * Everything is answered from the registry's caches (the sender's identity, the gateway's child ids):
 * no database read per message, and a refusal never reads the database at all.
 */
import type { Registry, DeviceIdentity } from '../registry/index.ts';
import { DEVICE_ID_PATTERN } from '../registry/index.ts';
import type { Logger } from '../log/index.ts';
import { counter, type MetricsRegistry } from '../metrics/index.ts';

/** why a message was refused (the `reason` label of `flux_uplink_refused_total`) */
export type RefusalCode = 'unknown_sender' | 'invalid_device_id' | 'not_a_gateway' | 'not_a_child' | 'device_disabled' | 'child_limit';

/** The device a message is stored, ruled and shown under. */
export interface Owner {
  id: string;
  product_id: string;
  product_key: string;
}

export type Verdict = { ok: true; owner: Owner; viaGateway: string | null } | { ok: false; code: RefusalCode; reason: string };

export interface Ownership {
  /**
   * Whether `senderId` (the authenticated device the message came from) may report for `claimedId`
   * (the decoded `device_id`). Answers at once when the caches hold what is needed, else a Promise.
   */
  check(senderId: string, claimedId: unknown): Verdict | Promise<Verdict>;
}

export interface OwnershipOptions {
  devices: Registry['devices'];
  metrics: MetricsRegistry;
  log: Logger;
  /** children a gateway may auto-register, at most (default 1000; beyond: refused `child_limit`) */
  maxAutoChildren?: number;
}

const DEVICE_ID_RE = new RegExp(DEVICE_ID_PATTERN);
const ownerOf = (i: DeviceIdentity): Owner => ({ id: i.device.id, product_id: i.product.id, product_key: i.product.key });

export function createOwnership(opts: OwnershipOptions): Ownership {
  const { devices, log } = opts;
  const maxAutoChildren = opts.maxAutoChildren ?? 1000;
  const refusedTotal = counter(opts.metrics, 'flux_uplink_refused_total', 'decoded messages refused because their device_id does not belong to the sender, by reason', ['reason']);
  const registered = counter(opts.metrics, 'flux_children_registered_total', 'child devices created by a gateway report (products with auto_register_children)');
  /** auto-registrations in flight, by child id: concurrent reports for a new child share one creation */
  const creating = new Map<string, Promise<Verdict>>();

  const refuse = (code: RefusalCode, reason: string): Verdict => {
    refusedTotal.inc({ reason: code });
    return { ok: false, code, reason };
  };

  function childVerdict(gateway: DeviceIdentity, child: DeviceIdentity | null, claimed: string): Verdict {
    if (!child || child.device.gateway_id !== gateway.device.id) return refuse('not_a_child', `'${claimed}' is not a registered child of gateway '${gateway.device.id}'`);
    if (!child.device.enabled) return refuse('device_disabled', `device '${claimed}' (a child of gateway '${gateway.device.id}') is disabled`);
    return { ok: true, owner: ownerOf(child), viaGateway: gateway.device.id };
  }

  async function autoRegister(gateway: DeviceIdentity, claimed: string, children: ReadonlySet<string>): Promise<Verdict> {
    if (children.size >= maxAutoChildren) return refuse('child_limit', `gateway '${gateway.device.id}' has ${children.size} children, the most it may auto-register (${maxAutoChildren})`);
    let p = creating.get(claimed);
    if (!p) {
      p = (async (): Promise<Verdict> => {
        try {
          await devices.create({ id: claimed, product_id: gateway.product.child_product_id ?? gateway.product.id, gateway_id: gateway.device.id, name: claimed });
        } catch (err) {
          // it exists already (another gateway's child, or a device of its own): not this gateway's
          return refuse('not_a_child', `'${claimed}' is not a child of gateway '${gateway.device.id}' and cannot be registered as one: ${(err as Error).message}`);
        }
        registered.inc();
        log.info({ gatewayId: gateway.device.id, deviceId: claimed }, 'child device registered on its first report');
        return childVerdict(gateway, await devices.identity(claimed), claimed);
      })().finally(() => creating.delete(claimed));
      creating.set(claimed, p);
    }
    return p;
  }

  function forGateway(gateway: DeviceIdentity, claimed: string, children: ReadonlySet<string>): Verdict | Promise<Verdict> {
    if (!children.has(claimed)) {
      if (gateway.product.auto_register_children) return autoRegister(gateway, claimed, children);
      return refuse('not_a_child', `'${claimed}' is not a registered child of gateway '${gateway.device.id}'`);
    }
    const child = devices.cachedIdentity(claimed);
    if (child) return childVerdict(gateway, child, claimed);
    return devices.identity(claimed).then((c) => childVerdict(gateway, c, claimed));
  }

  function fromSender(sender: DeviceIdentity | null, senderId: string, claimed: unknown): Verdict | Promise<Verdict> {
    if (!sender) return refuse('unknown_sender', `the sender '${senderId}' is not a registered device`);
    if (claimed === senderId) return { ok: true, owner: ownerOf(sender), viaGateway: null };
    if (typeof claimed !== 'string' || !DEVICE_ID_RE.test(claimed)) return refuse('invalid_device_id', `decoded device_id ${JSON.stringify(claimed)?.slice(0, 80)} is not a device id`);
    if (!sender.device.is_gateway) return refuse('not_a_gateway', `device '${senderId}' is not a gateway: it reports only for itself, not for '${claimed}'`);
    const children = devices.cachedChildIds(senderId);
    if (children) return forGateway(sender, claimed, children);
    return devices.childIds(senderId).then((c) => forGateway(sender, claimed, c));
  }

  return {
    check(senderId, claimedId) {
      const sender = devices.cachedIdentity(senderId);
      if (sender) return fromSender(sender, senderId, claimedId);
      return devices.identity(senderId).then((s) => fromSender(s, senderId, claimedId));
    },
  };
}
