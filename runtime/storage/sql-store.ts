/**
 * The SQL layout shared by SQLite, MySQL/MariaDB and PostgreSQL: a small `ts_series` table (one row
 * per device+metric, with its product) and `ts_points` keyed by (series_id, ts), so a time-range
 * scan of one metric of one device is a single clustered primary-key range on every engine.
 * Drivers supply connection, bulk insert and dialect details; the queries live here once.
 */
import type { AggRow, AggregateQuery, DeviceEvent, EventQuery, Point, RangeQuery, Sample, StoreInfo, TimeSeriesStore, Value } from './types.ts';

/** k: 0 number, 1 boolean (num = 0/1), 2 string. */
export interface PointRow {
  sid: number;
  ts: number;
  k: number;
  num: number | null;
  str: string | null;
}

export type Row = Record<string, unknown>;

/** A `ts_events` row: the payload as JSON text, `msg_id` '' when the event has none (it is part of the key). */
export interface EventRow {
  device_id: string;
  ts: number;
  event_id: string;
  msg_id: string;
  product: string;
  payload: string;
  flagged: number;
  problem: string | null;
}

export interface SqlDriver {
  readonly info: StoreInfo;
  open(): Promise<void>;
  close(): Promise<void>;
  /** SQL with `?` placeholders (the PostgreSQL driver numbers them). */
  all(sql: string, params?: unknown[]): Promise<Row[]>;
  /** Adds series rows, ignoring ones that exist. */
  insertSeries(rows: { device: string; metric: string; product: string }[]): Promise<void>;
  /** Upserts points (no duplicate (sid, ts) within one call). */
  insertPoints(rows: PointRow[]): Promise<void>;
  /** Deletes up to `chunk` points of one series older than `before`; answers how many. */
  deleteChunk(sid: number, before: number, chunk: number): Promise<number>;
  /** Upserts events on (device_id, ts, event_id, msg_id). */
  insertEvents(rows: EventRow[]): Promise<void>;
  /** Deletes the product's events older than `before`; answers how many. */
  deleteEvents(product: string, before: number): Promise<number>;
  /**
   * Makes every write so far visible to reads of these series, or of these devices' series
   * (SQLite folds its recent points in first, runtime/storage/sqlite-recent.ts). Absent: they are.
   */
  visible?(of: { series: number[] } | { devices: string[] }): Promise<void>;
  /** Integer bucket expression for column `ts` and an integer width. */
  bucket(width: number): string;
}

export function encodeValue(v: Value): { k: number; num: number | null; str: string | null } {
  if (typeof v === 'number') return { k: 0, num: v, str: null };
  if (typeof v === 'boolean') return { k: 1, num: v ? 1 : 0, str: null };
  return { k: 2, num: null, str: v };
}

export function decodeValue(k: unknown, num: unknown, str: unknown): Value {
  const kind = Number(k);
  if (kind === 2) return String(str);
  if (kind === 1) return Number(num) !== 0;
  return Number(num);
}

const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(',');

/** Keeps the last point of each (device, metric, ts) in a batch: "last write wins" without upsert conflicts. */
export function dedupe(points: Point[]): Point[] {
  const seen = new Map<string, number>();
  let dup = false;
  for (let i = 0; i < points.length; i++) {
    const p = points[i]!;
    const key = `${p.device}\0${p.metric}\0${p.ts}`;
    if (seen.has(key)) dup = true;
    seen.set(key, i);
  }
  if (!dup) return points;
  return [...seen.values()].sort((a, b) => a - b).map((i) => points[i]!);
}

export class SqlStore implements TimeSeriesStore {
  readonly #db: SqlDriver;
  /** `device\0metric` → series id; series are never renumbered, so the cache never goes stale. */
  readonly #sids = new Map<string, number>();

  constructor(driver: SqlDriver) {
    this.#db = driver;
  }

  get info(): StoreInfo {
    return this.#db.info;
  }

  open(): Promise<void> {
    return this.#db.open();
  }

  close(): Promise<void> {
    this.#sids.clear();
    return this.#db.close();
  }

  async ping(): Promise<void> {
    await this.#db.all('SELECT COUNT(*) AS n FROM ts_series WHERE id = ?', [0]);
  }

  async #seriesIds(points: Point[]): Promise<void> {
    const missing = new Map<string, { device: string; metric: string; product: string }>();
    for (const p of points) {
      const key = `${p.device}\0${p.metric}`;
      if (!this.#sids.has(key) && !missing.has(key)) missing.set(key, { device: p.device, metric: p.metric, product: p.product });
    }
    if (missing.size === 0) return;
    const rows = [...missing.values()];
    await this.#db.insertSeries(rows);
    const devices = [...new Set(rows.map((r) => r.device))];
    for (let i = 0; i < devices.length; i += 500) {
      const part = devices.slice(i, i + 500);
      const got = await this.#db.all(`SELECT id, device_id, metric FROM ts_series WHERE device_id IN (${placeholders(part.length)})`, part);
      for (const r of got) this.#sids.set(`${r.device_id}\0${r.metric}`, Number(r.id));
    }
  }

  async write(points: Point[]): Promise<void> {
    if (points.length === 0) return;
    const batch = dedupe(points);
    await this.#seriesIds(batch);
    const rows: PointRow[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      const sid = this.#sids.get(`${p.device}\0${p.metric}`);
      if (sid === undefined) throw new Error(`series ${p.device}/${p.metric} was not created`);
      const e = encodeValue(p.value);
      rows[i] = { sid, ts: p.ts, k: e.k, num: e.num, str: e.str };
    }
    await this.#db.insertPoints(rows);
  }

  /** Series of one device (optionally only some metrics): id → metric. */
  async #series(device: string, metrics?: string[]): Promise<Map<number, string>> {
    const params: unknown[] = [device];
    let sql = 'SELECT id, metric FROM ts_series WHERE device_id = ?';
    if (metrics && metrics.length) {
      sql += ` AND metric IN (${placeholders(metrics.length)})`;
      params.push(...metrics);
    }
    const rows = await this.#db.all(sql, params);
    return new Map(rows.map((r) => [Number(r.id), String(r.metric)]));
  }

  async metrics(device: string): Promise<string[]> {
    await this.#db.visible?.({ devices: [device] });
    const rows = await this.#db.all(
      'SELECT s.metric FROM ts_series s WHERE s.device_id = ? AND EXISTS (SELECT 1 FROM ts_points p WHERE p.series_id = s.id) ORDER BY s.metric',
      [device],
    );
    return rows.map((r) => String(r.metric));
  }

  async latest(device: string): Promise<Sample[]> {
    await this.#db.visible?.({ devices: [device] });
    const rows = await this.#db.all(
      `SELECT s.metric, p.ts, p.k, p.num, p.str FROM ts_series s
         JOIN ts_points p ON p.series_id = s.id AND p.ts = (SELECT MAX(ts) FROM ts_points WHERE series_id = s.id)
        WHERE s.device_id = ? ORDER BY s.metric`,
      [device],
    );
    return rows.map((r) => ({ metric: String(r.metric), ts: Number(r.ts), value: decodeValue(r.k, r.num, r.str) }));
  }

  async latestMany(devices: string[]): Promise<Map<string, Sample[]>> {
    const out = new Map<string, Sample[]>(devices.map((d) => [d, []]));
    for (let i = 0; i < devices.length; i += 500) {
      const part = devices.slice(i, i + 500);
      if (part.length === 0) break;
      await this.#db.visible?.({ devices: part });
      const rows = await this.#db.all(
        `SELECT s.device_id, s.metric, p.ts, p.k, p.num, p.str FROM ts_series s
           JOIN ts_points p ON p.series_id = s.id AND p.ts = (SELECT MAX(ts) FROM ts_points WHERE series_id = s.id)
          WHERE s.device_id IN (${placeholders(part.length)}) ORDER BY s.device_id, s.metric`,
        part,
      );
      for (const r of rows) out.get(String(r.device_id))?.push({ metric: String(r.metric), ts: Number(r.ts), value: decodeValue(r.k, r.num, r.str) });
    }
    return out;
  }

  async range(q: RangeQuery): Promise<Sample[]> {
    const series = await this.#series(q.device, q.metrics);
    if (series.size === 0) return [];
    const ids = [...series.keys()];
    await this.#db.visible?.({ series: ids });
    const limit = Math.max(1, Math.min(q.limit ?? 10_000, 1_000_000));
    const offset = Math.max(0, Math.trunc(q.offset ?? 0));
    const desc = q.order === 'desc';
    const dir = desc ? 'DESC' : 'ASC';
    const rows = await this.#db.all(
      `SELECT series_id, ts, k, num, str FROM ts_points WHERE series_id IN (${placeholders(ids.length)}) AND ts >= ? AND ts < ? ORDER BY ts ${dir}, series_id ${dir} LIMIT ${limit}${offset ? ` OFFSET ${offset}` : ''}`,
      [...ids, q.from, q.to],
    );
    const out = rows.map((r) => ({ metric: series.get(Number(r.series_id))!, ts: Number(r.ts), value: decodeValue(r.k, r.num, r.str) }));
    // Within one timestamp, order by metric name (series ids follow creation order, not names).
    return out.sort((a, b) => (desc ? b.ts - a.ts : a.ts - b.ts) || (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : 0));
  }

  async aggregate(q: AggregateQuery): Promise<AggRow[]> {
    const series = await this.#series(q.device, q.metrics);
    if (series.size === 0) return [];
    const ids = [...series.keys()];
    await this.#db.visible?.({ series: ids });
    const width = Math.trunc(q.interval);
    const firstLast = q.aggs.includes('first') || q.aggs.includes('last');
    const inner = `SELECT series_id, ${this.#db.bucket(width)} AS b, COUNT(*) AS cnt, AVG(num) AS av, MIN(num) AS mn, MAX(num) AS mx, SUM(num) AS sm, MIN(ts) AS fts, MAX(ts) AS lts
      FROM ts_points WHERE series_id IN (${placeholders(ids.length)}) AND ts >= ? AND ts < ? GROUP BY series_id, b`;
    const sql = firstLast
      ? `SELECT g.*, f.k AS fk, f.num AS fnum, f.str AS fstr, l.k AS lk, l.num AS lnum, l.str AS lstr FROM (${inner}) g
           JOIN ts_points f ON f.series_id = g.series_id AND f.ts = g.fts
           JOIN ts_points l ON l.series_id = g.series_id AND l.ts = g.lts`
      : `SELECT g.* FROM (${inner}) g`;
    const rows = await this.#db.all(sql, [...ids, q.from, q.to]);
    const limit = q.limit ?? Infinity;
    const out: AggRow[] = [];
    for (const r of rows) {
      const row: AggRow = { metric: series.get(Number(r.series_id))!, ts: Number(r.b) };
      for (const a of q.aggs) {
        if (a === 'avg') row.avg = numOrNull(r.av);
        else if (a === 'min') row.min = numOrNull(r.mn);
        else if (a === 'max') row.max = numOrNull(r.mx);
        else if (a === 'sum') row.sum = numOrNull(r.sm);
        else if (a === 'count') row.count = Number(r.cnt);
        else if (a === 'first') row.first = decodeValue(r.fk, r.fnum, r.fstr);
        else if (a === 'last') row.last = decodeValue(r.lk, r.lnum, r.lstr);
      }
      out.push(row);
    }
    out.sort((a, b) => (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : a.ts - b.ts));
    return out.length > limit ? out.slice(0, limit) : out;
  }

  async writeEvents(events: DeviceEvent[]): Promise<void> {
    if (events.length === 0) return;
    const rows = events.map((e) => ({ device_id: e.device, ts: e.ts, event_id: e.event, msg_id: e.msg_id ?? '', product: e.product, payload: JSON.stringify(e.payload), flagged: e.flagged ? 1 : 0, problem: e.problem }));
    await this.#db.insertEvents(rows);
  }

  async events(q: EventQuery): Promise<DeviceEvent[]> {
    const params: unknown[] = [q.device, q.from, q.to];
    let sql = 'SELECT device_id, product, event_id, ts, payload, msg_id, flagged, problem FROM ts_events WHERE device_id = ? AND ts >= ? AND ts < ?';
    if (q.event !== undefined) {
      sql += ' AND event_id = ?';
      params.push(q.event);
    }
    const dir = q.order === 'desc' ? 'DESC' : 'ASC';
    const limit = Math.max(1, Math.min(q.limit ?? 10_000, 1_000_000));
    const rows = await this.#db.all(`${sql} ORDER BY ts ${dir}, event_id ${dir}, msg_id ${dir} LIMIT ${limit}`, params);
    return rows.map((r) => ({
      device: String(r.device_id),
      product: String(r.product),
      event: String(r.event_id),
      ts: Number(r.ts),
      payload: JSON.parse(String(r.payload)) as Record<string, unknown>,
      msg_id: r.msg_id ? String(r.msg_id) : null,
      flagged: Number(r.flagged) !== 0,
      problem: r.problem === null || r.problem === undefined ? null : String(r.problem),
    }));
  }

  deleteEventsBefore(product: string, before: number): Promise<number> {
    return this.#db.deleteEvents(product, before);
  }

  async deleteBefore(product: string, before: number): Promise<number> {
    const series = await this.#db.all('SELECT id FROM ts_series WHERE product = ?', [product]);
    let total = 0;
    for (const s of series) {
      // Small chunks, yielding between them, so a long-neglected series never holds the
      // database (or SQLite's single connection) long enough to stall the write path.
      while (true) {
        const n = await this.#db.deleteChunk(Number(s.id), before, 5000);
        total += n;
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (n < 5000) break;
      }
    }
    return total;
  }
}
