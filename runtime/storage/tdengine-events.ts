/**
 * Device events on TDengine: a super table `ev_<product>` beside the product's telemetry one, with
 * sub-tables per device created on first write. Names are encoded like telemetry's.
 *
 * TDengine keys a sub-table's rows by timestamp alone (millisecond precision here): a second event
 * of a device in the same millisecond would replace the first. The SQL stores key an event by
 * (device, ts, event id, message id), and so does this one: a device's first event of a millisecond
 * goes to its sub-table `e_<device>`, another one of the same millisecond to `e_<device>_s1`, then
 * `_s2`… (`_s` never occurs in an encoded name). Before a batch is written, the rows already stored
 * at its milliseconds are read (one query per product and at most 100 devices): an event already
 * there (same identity) is written over its own row, so a retried batch stays harmless; a new one
 * takes the first slot free at its millisecond. Reads go through the super table, filtered by the
 * `device_id` tag, so every slot of the device comes back. (Two FLUX nodes writing events of one
 * device in the same millisecond at the same moment could still pick the same slot: each uplink is
 * processed on one node, so that needs the same device on two nodes at once.)
 */
import { DataError, MAX_EVENT_PAYLOAD, type DeviceEvent, type TimeSeriesStore } from './types.ts';

const EVENT_COLUMNS = `ts TIMESTAMP, event_id NCHAR(64), msg_id NCHAR(64), product NCHAR(64), payload NCHAR(${MAX_EVENT_PAYLOAD}), flagged BOOL, problem NCHAR(1000)`;

/** Events of one device in one millisecond, at most (a device sending more is refused: DataError). */
export const MAX_EVENTS_PER_MS = 1000;
/** devices per read-before-write query */
const DEVICES_PER_READ = 100;

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

/** What makes two events the same event (the SQL stores' primary key without device and ts). */
const identity = (event: string, msgId: string | null | undefined) => `${event}\n${msgId ?? ''}`;

export function tdengineEvents(d: TdengineEventDeps): EventMethods {
  /** products whose event super table exists (created on first write) */
  const eventStables = new Set<string>();
  const eventStableName = (product: string) => `ev_${d.encodeName(product)}`;
  const slotTableName = (device: string, slot: number) => `e_${d.encodeName(device)}${slot === 0 ? '' : `_s${slot}`}`;
  const slotOf = (tbname: string) => {
    const m = /_s(\d+)$/.exec(tbname);
    return m ? Number(m[1]) : 0;
  };

  /** (device, ms) → slot → identity of the row stored there, for the devices and time span of `events` (one product). */
  async function stored(product: string, events: DeviceEvent[]): Promise<Map<string, Map<number, string>>> {
    const out = new Map<string, Map<number, string>>();
    const devices = [...new Set(events.map((e) => e.device))];
    for (let i = 0; i < devices.length; i += DEVICES_PER_READ) {
      const some = devices.slice(i, i + DEVICES_PER_READ);
      const mine = events.filter((e) => some.includes(e.device));
      const from = Math.min(...mine.map((e) => Math.trunc(e.ts)));
      const to = Math.max(...mine.map((e) => Math.trunc(e.ts)));
      let r;
      try {
        r = await d.sql(`SELECT ts, event_id, msg_id, device_id, tbname FROM ${d.db}.${eventStableName(product)} WHERE device_id IN (${some.map(d.quote).join(', ')}) AND ts >= ${from} AND ts <= ${to}`);
      } catch (err) {
        if (d.missingTable(err)) continue;
        throw err;
      }
      for (const row of r.data) {
        const key = `${String(row[3])}\n${d.parseTs(row[0])}`;
        let slots = out.get(key);
        if (!slots) out.set(key, (slots = new Map()));
        slots.set(slotOf(String(row[4])), identity(String(row[1]), row[2] ? String(row[2]) : null));
      }
    }
    return out;
  }

  return {
    forget: () => eventStables.clear(),
    async writeEvents(events: DeviceEvent[]) {
      if (events.length === 0) return;
      const clauses: string[] = [];
      for (const product of new Set(events.map((e) => e.product))) {
        if (!eventStables.has(product)) {
          await d.sql(`CREATE STABLE IF NOT EXISTS ${d.db}.${eventStableName(product)} (${EVENT_COLUMNS}) TAGS (device_id NCHAR(64))`);
          eventStables.add(product);
        }
        const mine = events.filter((e) => e.product === product);
        const taken = await stored(product, mine);
        for (const e of mine) {
          const ts = Math.trunc(e.ts);
          const key = `${e.device}\n${ts}`;
          let slots = taken.get(key);
          if (!slots) taken.set(key, (slots = new Map()));
          const id = identity(e.event, e.msg_id);
          // The same event again (a retried batch): its own row. A new one: the first free slot.
          let slot = [...slots].find(([, v]) => v === id)?.[0];
          if (slot === undefined) {
            slot = 0;
            while (slots.has(slot)) slot++;
            if (slot >= MAX_EVENTS_PER_MS) throw new DataError(`device '${e.device}' has more than ${MAX_EVENTS_PER_MS} events in the millisecond ${ts}`);
            slots.set(slot, id);
          }
          clauses.push(
            `${d.db}.${slotTableName(e.device, slot)} USING ${d.db}.${eventStableName(product)} TAGS (${d.quote(e.device)}) (ts, event_id, msg_id, product, payload, flagged, problem) VALUES (${ts}, ${d.quote(e.event)}, ${d.quote(e.msg_id ?? '')}, ${d.quote(e.product)}, ${d.quote(JSON.stringify(e.payload))}, ${e.flagged ? 'true' : 'false'}, ${e.problem === null ? 'NULL' : d.quote(e.problem)})`,
          );
        }
      }
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
      const desc = q.order === 'desc';
      let r;
      try {
        r = await d.sql(
          `SELECT ts, event_id, msg_id, product, payload, flagged, problem FROM ${d.db}.${eventStableName(q.product)} WHERE device_id = ${d.quote(q.device)} AND ts >= ${Math.trunc(q.from)} AND ts < ${Math.trunc(q.to)}${only} ORDER BY ts ${desc ? 'DESC' : 'ASC'} LIMIT ${limit}`,
        );
      } catch (err) {
        if (d.missingTable(err)) return [];
        throw err;
      }
      const out = r.data.map((row) => ({
        device: q.device,
        ts: d.parseTs(row[0]),
        event: String(row[1]),
        msg_id: row[2] ? String(row[2]) : null,
        product: String(row[3]),
        payload: JSON.parse(String(row[4])) as Record<string, unknown>,
        flagged: row[5] === true || row[5] === 1 || row[5] === 'true',
        problem: row[6] === null || row[6] === undefined ? null : String(row[6]),
      }));
      // Events of one millisecond come from several sub-tables in no set order: by event id, then message id, like the SQL stores.
      const cmp = (a: DeviceEvent, b: DeviceEvent) => a.ts - b.ts || (a.event < b.event ? -1 : a.event > b.event ? 1 : 0) || ((a.msg_id ?? '') < (b.msg_id ?? '') ? -1 : (a.msg_id ?? '') > (b.msg_id ?? '') ? 1 : 0);
      return out.sort((a, b) => (desc ? cmp(b, a) : cmp(a, b)));
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
