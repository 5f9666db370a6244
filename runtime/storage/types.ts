/** The one time-series store interface every backend implements (test/storage runs one contract suite against every backend). */

export type Value = number | string | boolean;

/** One stored value: `product` selects the TDengine super table and the retention policy. */
export interface Point {
  device: string;
  product: string;
  metric: string;
  /** epoch milliseconds */
  ts: number;
  value: Value;
}

export interface Sample {
  metric: string;
  ts: number;
  value: Value;
}

export const AGGREGATES = ['avg', 'min', 'max', 'sum', 'count', 'first', 'last'] as const;
export type Agg = (typeof AGGREGATES)[number];

export interface RangeQuery {
  device: string;
  /** empty or absent: every metric of the device */
  metrics?: string[];
  /** inclusive, epoch ms */
  from: number;
  /** exclusive, epoch ms */
  to: number;
  limit?: number;
  /** raw values only: by time, 'asc' (default, oldest first) or 'desc' */
  order?: 'asc' | 'desc';
  /** raw values only: skip this many (in `order`) */
  offset?: number;
}

export interface AggregateQuery extends RangeQuery {
  /** bucket width in ms; buckets start at multiples of it since the epoch */
  interval: number;
  aggs: Agg[];
}

/**
 * One bucket of one metric. avg/min/max/sum are over numeric values (booleans count as 0/1 on SQL
 * backends); they are null when the bucket holds only strings. count/first/last take every value.
 */
export interface AggRow {
  metric: string;
  /** bucket start, epoch ms */
  ts: number;
  avg?: number | null;
  min?: number | null;
  max?: number | null;
  sum?: number | null;
  count?: number;
  first?: Value | null;
  last?: Value | null;
}

/**
 * One device event (…/event/{eventId}): kept whole, beside the telemetry of the same store. `flagged`
 * marks a payload that does not match the event declared in the thing model (`problem` says how);
 * it is stored all the same.
 */
export interface DeviceEvent {
  device: string;
  /** selects the retention policy (and the TDengine super table) like a Point's product */
  product: string;
  /** the event id of the topic */
  event: string;
  /** epoch milliseconds */
  ts: number;
  payload: Record<string, unknown>;
  /** the uplink id: GET /api/trace/{msg_id} shows the message's path */
  msg_id: string | null;
  flagged: boolean;
  problem: string | null;
}

export interface EventQuery {
  device: string;
  /** the device's product (TDengine reads the product's event super table: a device's events may span several sub-tables) */
  product: string;
  /** only this event id */
  event?: string;
  /** inclusive, epoch ms */
  from: number;
  /** exclusive, epoch ms */
  to: number;
  limit?: number;
  /** by time; 'asc' (default) oldest first */
  order?: 'asc' | 'desc';
}

/** Longest stored event payload (JSON characters); a longer one is refused before it is stored. */
export const MAX_EVENT_PAYLOAD = 8192;

export interface StoreInfo {
  dialect: 'sqlite' | 'mysql' | 'postgres' | 'tdengine';
  /** e.g. 'timescaledb hypertable', 'plain table', 'WAL file' */
  layout: string;
}

export interface TimeSeriesStore {
  readonly info: StoreInfo;
  /** Connects and creates the schema. Throws when the database cannot be reached. */
  open(): Promise<void>;
  close(): Promise<void>;
  /** Cheap round trip that touches the store's tables; throws when they cannot be used. */
  ping(): Promise<void>;
  /** Writes all points or throws (a retried batch is harmless: a (device, metric, ts) is stored once, last write wins). */
  write(points: Point[]): Promise<void>;
  /** The newest value of each metric of a device. */
  latest(device: string): Promise<Sample[]>;
  /** latest() of many devices in one call (SQL: one query): device → its samples (empty when none). */
  latestMany(devices: string[]): Promise<Map<string, Sample[]>>;
  /** Raw values in [from, to), ordered by time then metric. */
  range(q: RangeQuery): Promise<Sample[]>;
  /** Aggregates per metric and bucket in [from, to), ordered by metric then bucket. */
  aggregate(q: AggregateQuery): Promise<AggRow[]>;
  /** Metric names a device has values for. */
  metrics(device: string): Promise<string[]>;
  /** Retention: deletes the product's values older than `before` (epoch ms); answers how many (or -1 when unknown). */
  deleteBefore(product: string, before: number): Promise<number>;
  /** Writes device events or throws; a retried batch is harmless (a (device, ts, event, msg_id) is stored once). */
  writeEvents(events: DeviceEvent[]): Promise<void>;
  /** Events of one device in [from, to), by time (then event id). */
  events(q: EventQuery): Promise<DeviceEvent[]>;
  /** Retention for events: deletes the product's events older than `before`; answers how many (or -1 when unknown). */
  deleteEventsBefore(product: string, before: number): Promise<number>;
  /** Optional: tells the store a product's declared properties (TDengine creates typed columns from it). */
  defineProduct?(product: string, properties: { id: string; type: string }[]): Promise<void>;
}

/** A store error that retrying will not fix (bad data): the writer drops such a batch, counted and logged. */
export class DataError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DataError';
  }
}
