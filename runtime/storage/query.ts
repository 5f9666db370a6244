/** Query parameters shared by the REST API and the `flux query` node: times, intervals, aggregates, limits. */
import { badRequest } from '../errors/index.ts';
import { AGGREGATES, type Agg } from './types.ts';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** Aggregated answers stay small: at most this many buckets per metric. */
export const MAX_BUCKETS = 100_000;
export const MAX_LIMIT = 100_000;

/** ISO 8601 or epoch milliseconds. */
export function parseTime(raw: unknown, name: string, fallback: number): number {
  if (raw === undefined || raw === null || raw === '') return fallback;
  if (typeof raw === 'number' && Number.isFinite(raw)) return Math.trunc(raw);
  const s = String(raw).trim();
  const t = /^-?\d+$/.test(s) ? Number(s) : /^\d{4}-\d{2}-\d{2}/.test(s) ? Date.parse(s) : NaN;
  if (!Number.isFinite(t) || Math.abs(t) > 8.64e15) throw badRequest(`${name}=${JSON.stringify(raw)} is not a time (ISO 8601 or epoch milliseconds)`);
  return t;
}

/** `60000`, `500ms`, `10s`, `1m`, `1h`, `1d`. */
export function parseInterval(raw: unknown): number | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  const m = /^(\d+)(ms|s|m|h|d)?$/.exec(String(raw).trim());
  const ms = m ? Number(m[1]) * UNITS[m[2] ?? 'ms']! : NaN;
  if (!Number.isSafeInteger(ms) || ms < 1) throw badRequest(`interval=${JSON.stringify(raw)} is not a positive duration (e.g. 60000, 10s, 1m, 1h, 1d)`);
  return ms;
}

export function parseAggs(raw: unknown): Agg[] | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  const list = (Array.isArray(raw) ? raw.map(String) : String(raw).split(',')).map((s) => s.trim().toLowerCase()).filter(Boolean);
  for (const a of list) if (!(AGGREGATES as readonly string[]).includes(a)) throw badRequest(`agg '${a}' is not one of ${AGGREGATES.join(', ')}`);
  if (list.length === 0) throw badRequest(`agg is empty (use one or more of ${AGGREGATES.join(', ')})`);
  return [...new Set(list)] as Agg[];
}

export function parseMetrics(raw: unknown): string[] | undefined {
  if (raw === undefined || raw === null || raw === '') return undefined;
  const list = (Array.isArray(raw) ? raw.map(String) : String(raw).split(',')).map((s) => s.trim()).filter(Boolean);
  return list.length ? list : undefined;
}

export interface TelemetryParams {
  metric?: unknown;
  from?: unknown;
  to?: unknown;
  interval?: unknown;
  agg?: unknown;
  limit?: unknown;
  /** raw values: asc (default) or desc */
  order?: unknown;
  /** raw values: skip this many */
  offset?: unknown;
}

export interface TelemetryQuery {
  metrics?: string[];
  from: number;
  to: number;
  /** set: aggregated */
  interval?: number;
  aggs: Agg[];
  limit: number;
  order: 'asc' | 'desc';
  offset: number;
}

/** Validates a telemetry query: default range is the last 24 h; `agg` alone or `interval` alone picks the other's default. */
export function parseTelemetryQuery(p: TelemetryParams, now = Date.now()): TelemetryQuery {
  const to = parseTime(p.to, 'to', now);
  const from = parseTime(p.from, 'from', to - 86_400_000);
  if (from >= to) throw badRequest(`from (${new Date(from).toISOString()}) must be before to (${new Date(to).toISOString()})`);
  let interval = parseInterval(p.interval);
  const aggs = parseAggs(p.agg);
  if (aggs && interval === undefined) interval = to - from;
  if (interval !== undefined && (to - from) / interval > MAX_BUCKETS) throw badRequest(`interval too small for the range: more than ${MAX_BUCKETS} buckets`);
  let limit = MAX_LIMIT / 10;
  if (p.limit !== undefined && p.limit !== '') {
    limit = Number(p.limit);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw badRequest(`limit must be an integer from 1 to ${MAX_LIMIT}`);
  }
  const order = p.order === undefined || p.order === '' ? 'asc' : p.order;
  if (order !== 'asc' && order !== 'desc') throw badRequest(`order=${JSON.stringify(p.order)} is not asc or desc`);
  let offset = 0;
  if (p.offset !== undefined && p.offset !== '') {
    offset = Number(p.offset);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > 1_000_000) throw badRequest('offset must be an integer from 0 to 1000000');
  }
  if (interval !== undefined && (order !== 'asc' || offset !== 0)) throw badRequest('order and offset apply to raw values; aggregated answers come oldest bucket first');
  return { metrics: parseMetrics(p.metric), from, to, interval, aggs: aggs ?? ['avg'], limit, order, offset };
}
