/**
 * Device events against the thing model: `metadata.events[]` declares each event id with its
 * `fields` (id, type, required). A payload that does not match is stored all the same, flagged with
 * the first problem found, so a device with a newer firmware loses nothing.
 */
import { coerce, type ProductPolicy, type StandardMessage } from './model.ts';
import { MAX_EVENT_PAYLOAD, type DeviceEvent } from './types.ts';

/** Declared events: event id → its fields (empty map: the event declares none). Undefined: the model declares no events. */
export type EventModel = ProductPolicy['events'];

/** The first way `payload` differs from the declared event, or null when it matches (or nothing is declared). */
export function eventProblem(model: EventModel, eventId: string, payload: Record<string, unknown>): string | null {
  if (!model) return null;
  const fields = model.get(eventId);
  if (!fields) return `event '${eventId}' is not declared in the thing model (metadata.events)`;
  for (const [id, f] of fields) {
    if (!(id in payload)) {
      if (f.required) return `field '${id}' is required`;
      continue;
    }
    if (coerce(payload[id], f.type) === undefined) return `field '${id}': ${JSON.stringify(payload[id])?.slice(0, 40)} is not a ${f.type}`;
  }
  if (fields.size) for (const k of Object.keys(payload)) if (!fields.has(k)) return `field '${k}' is not declared for event '${eventId}'`;
  return null;
}

/** The time of a StandardMessage (its `ts`, number or ISO text), else the fallback. */
export function messageTs(msg: StandardMessage, fallbackTs: number): number {
  if (typeof msg.ts === 'number' && Number.isFinite(msg.ts)) return Math.trunc(msg.ts);
  if (typeof msg.ts === 'string' && msg.ts.trim() !== '') {
    const t = /^\d+$/.test(msg.ts.trim()) ? Number(msg.ts) : Date.parse(msg.ts);
    if (Number.isFinite(t)) return Math.trunc(t);
  }
  return fallbackTs;
}

/** The event a StandardMessage with `event_id` carries: its `values` are the payload. Throws when the payload is too large to store. */
export function toEvent(msg: StandardMessage & { event_id: string }, device: string, productId: string, model: EventModel, fallbackTs: number, msgId: string | null): DeviceEvent {
  const payload = (msg.values ?? {}) as Record<string, unknown>;
  const size = JSON.stringify(payload).length;
  if (size > MAX_EVENT_PAYLOAD) throw new Error(`event '${msg.event_id}' of device '${device}': the payload is ${size} characters of JSON, over ${MAX_EVENT_PAYLOAD}`);
  const problem = eventProblem(model, msg.event_id, payload);
  return { device, product: productId, event: msg.event_id, ts: messageTs(msg, fallbackTs), payload, msg_id: msgId, flagged: problem !== null, problem };
}
