/**
 * Device events on TDengine: a super table `ev_<product>` beside the product's telemetry one, with a
 * sub-table per device `e_<device>`, created on first write. Names are encoded like telemetry's.
 */
import { MAX_EVENT_PAYLOAD, type DeviceEvent, type TimeSeriesStore } from './types.ts';

const EVENT_COLUMNS = `ts TIMESTAMP, event_id NCHAR(64), msg_id NCHAR(64), product NCHAR(64), payload NCHAR(${MAX_EVENT_PAYLOAD}), flagged BOOL, problem NCHAR(1000)`;

export interface TdengineEventDeps {
  db: string;
  /** the identifier encoding of runtime/storage/tdengine.ts */
  encodeName(s: string): string;
  sql(statement: string): Promise<{ data: unknown[][] }>;
  quote(s: string): string;
  parseTs(v: unknown): number;
  /** the error says the table does not exist */
  missingTable(err: unknown): boolean;
}

type EventMethods = Pick<TimeSeriesStore, 'writeEvents' | 'events' | 'deleteEventsBefore'> & { forget(): void };

export function tdengineEvents(d: TdengineEventDeps): EventMethods {
  /** products whose event super table exists (created on first write) */
  const eventStables = new Set<string>();
  const eventStableName = (product: string) => `ev_${d.encodeName(product)}`;
  const eventTableName = (device: string) => `e_${d.encodeName(device)}`;
  return {
    forget: () => eventStables.clear(),
    async writeEvents(events: DeviceEvent[]) {
      if (events.length === 0) return;
      for (const product of new Set(events.map((e) => e.product))) {
        if (eventStables.has(product)) continue;
        await d.sql(`CREATE STABLE IF NOT EXISTS ${d.db}.${eventStableName(product)} (${EVENT_COLUMNS}) TAGS (device_id NCHAR(64))`);
        eventStables.add(product);
      }
      // TDengine keys a row by its timestamp: two events of one device in the same millisecond keep the last.
      const clauses = events.map(
        (e) =>
          `${d.db}.${eventTableName(e.device)} USING ${d.db}.${eventStableName(e.product)} TAGS (${d.quote(e.device)}) (ts, event_id, msg_id, product, payload, flagged, problem) VALUES (${Math.trunc(e.ts)}, ${d.quote(e.event)}, ${d.quote(e.msg_id ?? '')}, ${d.quote(e.product)}, ${d.quote(JSON.stringify(e.payload))}, ${e.flagged ? 'true' : 'false'}, ${e.problem === null ? 'NULL' : d.quote(e.problem)})`,
      );
      let stmt = '';
      for (const c of clauses) {
        if (stmt && stmt.length + c.length > 1_000_000) {
          await d.sql(stmt);
          stmt = '';
        }
        stmt = stmt ? `${stmt} ${c}` : `INSERT INTO ${c}`;
      }
      if (stmt) await d.sql(stmt);
    },
    async events(q) {
      const limit = Math.max(1, Math.min(q.limit ?? 10_000, 1_000_000));
      const only = q.event === undefined ? '' : ` AND event_id = ${d.quote(q.event)}`;
      let r;
      try {
        r = await d.sql(
          `SELECT ts, event_id, msg_id, product, payload, flagged, problem FROM ${d.db}.${eventTableName(q.device)} WHERE ts >= ${Math.trunc(q.from)} AND ts < ${Math.trunc(q.to)}${only} ORDER BY ts ${q.order === 'desc' ? 'DESC' : 'ASC'} LIMIT ${limit}`,
        );
      } catch (err) {
        if (d.missingTable(err)) return [];
        throw err;
      }
      return r.data.map((row) => ({
        device: q.device,
        ts: d.parseTs(row[0]),
        event: String(row[1]),
        msg_id: row[2] ? String(row[2]) : null,
        product: String(row[3]),
        payload: JSON.parse(String(row[4])) as Record<string, unknown>,
        flagged: row[5] === true || row[5] === 1 || row[5] === 'true',
        problem: row[6] === null || row[6] === undefined ? null : String(row[6]),
      }));
    },
    async deleteEventsBefore(product, before) {
      try {
        const r = await d.sql(`DELETE FROM ${d.db}.${eventStableName(product)} WHERE ts < ${Math.trunc(before)}`);
        return Number(r.data[0]?.[0] ?? -1);
      } catch (err) {
        if (d.missingTable(err)) return 0;
        throw err;
      }
    },
  };
}
