/**
 * @module bus — the device bus: typed events between ingress (MQTT, TCP, HTTP) and the flow.
 *
 * In-process today; the interface is what a Redis-backed bus implements for multi-node mode
 * (ARCHITECTURE §7). Listeners are kept per owner and wrapped, so one that throws is logged and
 * never breaks delivery to the others (zigbee2mqtt eventBus).
 */
import type { Logger } from '../log/index.ts';

/** One uplink from a device, before decoding. `payload` is the bytes exactly as received. */
export interface UplinkMessage {
  /** unique per uplink; the trace id of the message */
  id: string;
  deviceId: string;
  productId: string;
  productKey: string;
  /** `properties` for …/properties/report, `event` for …/event/{eventId}, `raw` for a TCP frame */
  type: 'properties' | 'event' | 'raw';
  eventId?: string;
  /** ms since epoch, when the platform received it */
  ts: number;
  payload: Buffer;
  topic: string;
  transport: 'mqtt' | 'tcp' | 'http';
}

export interface StatusEvent {
  deviceId: string;
  productId: string;
  productKey: string;
  status: 'online' | 'offline';
  ts: number;
  transport: 'mqtt' | 'tcp' | 'http';
  reason?: string;
}

export interface DeviceBusEvents {
  uplink: UplinkMessage;
  status: StatusEvent;
}

export interface BusFilter {
  productKey?: string;
  productId?: string;
  deviceId?: string;
  type?: UplinkMessage['type'] | 'status';
}

type Handler<E extends keyof DeviceBusEvents> = (event: DeviceBusEvents[E]) => void;

export interface DeviceBus {
  emit<E extends keyof DeviceBusEvents>(event: E, payload: DeviceBusEvents[E]): void;
  /** Subscribes `handler` for `owner`; returns the function that unsubscribes it. */
  on<E extends keyof DeviceBusEvents>(event: E, owner: object, handler: Handler<E>): () => void;
  /** Removes every listener of `owner` (an extension's or a node's stop()). */
  removeOwner(owner: object): void;
  listenerCount(event: keyof DeviceBusEvents): number;
}

export function matchesFilter(filter: BusFilter, ev: { productKey: string; productId: string; deviceId: string; type?: string }): boolean {
  if (filter.productKey && filter.productKey !== ev.productKey) return false;
  if (filter.productId && filter.productId !== ev.productId) return false;
  if (filter.deviceId && filter.deviceId !== ev.deviceId) return false;
  if (filter.type && ev.type !== undefined && filter.type !== ev.type) return false;
  return true;
}

export function createDeviceBus(log: Logger): DeviceBus {
  const listeners = new Map<keyof DeviceBusEvents, Map<object, Set<Handler<any>>>>();
  return {
    emit(event, payload) {
      const byOwner = listeners.get(event);
      if (!byOwner) return;
      for (const handlers of byOwner.values()) {
        for (const h of handlers) {
          try {
            h(payload);
          } catch (err) {
            log.error({ err, event }, 'device bus listener failed');
          }
        }
      }
    },
    on(event, owner, handler) {
      let byOwner = listeners.get(event);
      if (!byOwner) listeners.set(event, (byOwner = new Map()));
      let set = byOwner.get(owner);
      if (!set) byOwner.set(owner, (set = new Set()));
      set.add(handler);
      return () => {
        set.delete(handler);
        if (set.size === 0) byOwner.delete(owner);
      };
    },
    removeOwner(owner) {
      for (const byOwner of listeners.values()) byOwner.delete(owner);
    },
    listenerCount(event) {
      let n = 0;
      for (const s of listeners.get(event)?.values() ?? []) n += s.size;
      return n;
    },
  };
}
