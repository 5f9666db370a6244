/**
 * Thing-model checks on the write path: each value of a StandardMessage is coerced to its declared
 * property type when that loses nothing, refused otherwise; properties the model does not declare
 * are kept or refused per product (`metadata.storage.unknown_properties`). Both outcomes are counted.
 */
import type { Product } from '../registry/index.ts';
import type { Point, Value } from './types.ts';

export type PropertyType = 'int' | 'float' | 'double' | 'number' | 'bool' | 'string' | 'enum';

/** Per-product storage settings, read from the product's `metadata.storage` (docs/storage.md). */
export interface ProductPolicy {
  productId: string;
  /** 'keep' (default) or 'refuse' values of properties the thing model does not declare */
  unknown: 'keep' | 'refuse';
  /** delete values older than this many days; undefined: keep forever */
  retentionDays?: number;
  types: Map<string, PropertyType>;
  /** the events the thing model declares (runtime/storage/events.ts); undefined: none declared */
  events?: Map<string, Map<string, { type: PropertyType; required: boolean }>>;
}

export function policyOf(product: Product): ProductPolicy {
  const meta = (product.metadata ?? {}) as Record<string, unknown>;
  const storage = (meta.storage ?? {}) as { unknown_properties?: unknown; retention_days?: unknown };
  const days = Number(storage.retention_days);
  const types = new Map<string, PropertyType>();
  for (const p of product.metadata?.properties ?? []) types.set(p.id, p.type);
  return {
    events: eventModelOf(product),
    productId: product.id,
    unknown: storage.unknown_properties === 'refuse' ? 'refuse' : 'keep',
    retentionDays: Number.isFinite(days) && days > 0 ? days : undefined,
    types,
  };
}

/** The events `metadata.events[]` declares, with their `fields` (runtime/storage/events.ts checks payloads against them). */
export function eventModelOf(product: Product): ProductPolicy['events'] {
  const list = (product.metadata as { events?: unknown } | undefined)?.events;
  if (!Array.isArray(list) || list.length === 0) return undefined;
  const model = new Map<string, Map<string, { type: PropertyType; required: boolean }>>();
  for (const e of list as { id?: unknown; fields?: unknown }[]) {
    if (typeof e?.id !== 'string') continue;
    const fields = new Map<string, { type: PropertyType; required: boolean }>();
    for (const f of Array.isArray(e.fields) ? (e.fields as { id?: unknown; type?: unknown; required?: unknown }[]) : []) {
      if (typeof f?.id === 'string') fields.set(f.id, { type: f.type as PropertyType, required: f.required === true });
    }
    model.set(e.id, fields);
  }
  return model;
}

const INT_RE = /^[+-]?\d+$/;
const NUM_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** The value as `type` when the conversion loses nothing; undefined when it would. */
export function coerce(v: unknown, type: PropertyType | undefined): Value | undefined {
  if (typeof v === 'number' && !Number.isFinite(v)) return undefined;
  if (typeof v !== 'number' && typeof v !== 'string' && typeof v !== 'boolean') return undefined;
  switch (type) {
    case undefined:
      return v;
    case 'int':
      if (typeof v === 'number') return Number.isSafeInteger(v) ? v : undefined;
      if (typeof v === 'boolean') return v ? 1 : 0;
      if (INT_RE.test(v.trim()) && Number.isSafeInteger(Number(v))) return Number(v);
      return undefined;
    case 'float':
    case 'double':
    case 'number':
      if (typeof v === 'number') return v;
      if (typeof v === 'boolean') return v ? 1 : 0;
      if (NUM_RE.test(v.trim()) && Number.isFinite(Number(v))) return Number(v);
      return undefined;
    case 'bool':
      if (typeof v === 'boolean') return v;
      if (v === 0 || v === 1) return v === 1;
      if (typeof v === 'string') {
        const s = v.trim().toLowerCase();
        if (s === 'true' || s === '1') return true;
        if (s === 'false' || s === '0') return false;
      }
      return undefined;
    case 'string':
      return typeof v === 'string' ? v : String(v);
    case 'enum':
      return typeof v === 'boolean' ? undefined : v;
  }
}

export interface StandardMessage {
  device_id?: string;
  values?: Record<string, unknown>;
  ts?: number | string;
  /** set on the messages of an …/event/{eventId} uplink: `values` is then the event's payload, stored as an event */
  event_id?: string;
}

export interface Refused {
  metric: string;
  reason: 'type' | 'unknown';
}

export interface Converted {
  points: Point[];
  refused: Refused[];
  /** unknown properties that were kept */
  unknownKept: number;
}

/** Turns one StandardMessage into points under a product's policy. */
export function toPoints(msg: StandardMessage, device: string, policy: ProductPolicy, fallbackTs: number): Converted {
  const out: Converted = { points: [], refused: [], unknownKept: 0 };
  let ts = fallbackTs;
  if (typeof msg.ts === 'number' && Number.isFinite(msg.ts)) ts = Math.trunc(msg.ts);
  else if (typeof msg.ts === 'string' && msg.ts.trim() !== '') {
    const t = /^\d+$/.test(msg.ts.trim()) ? Number(msg.ts) : Date.parse(msg.ts);
    if (Number.isFinite(t)) ts = Math.trunc(t);
  }
  const values = msg.values ?? {};
  for (const metric of Object.keys(values)) {
    const type = policy.types.get(metric);
    if (type === undefined && policy.unknown === 'refuse') {
      out.refused.push({ metric, reason: 'unknown' });
      continue;
    }
    const v = coerce(values[metric], type);
    if (v === undefined) {
      out.refused.push({ metric, reason: 'type' });
      continue;
    }
    if (type === undefined) out.unknownKept++;
    out.points.push({ device, product: policy.productId, metric, ts, value: v });
  }
  return out;
}
