/**
 * The alarms repository: alarms with a level, a source rule and device, first/last time and a count;
 * states active → acknowledged → cleared. At most one alarm per rule and device is open (active or
 * acknowledged), kept by a unique key in the database (migration 010), so it holds across processes
 * sharing the database; every state change is one conditional UPDATE. test/registry/alarms.test.ts
 * runs it on SQLite, MariaDB and PostgreSQL.
 */
import { UniqueConstraintError, type Model, type WhereOptions } from 'sequelize';
import { conflict, notFound } from '../../errors/index.ts';
import { clampPage, iso, isUuid, type Db, type ListOptions, type Page } from '../rows.ts';
import type { Alarm, AlarmLevel, AlarmState } from '../../api-shapes/index.ts';

export type { Alarm, AlarmLevel, AlarmState };

export interface AlarmFilter extends ListOptions {
  state?: AlarmState;
  level?: AlarmLevel;
  rule_id?: string;
  device_id?: string;
}

/** `changed` false: the alarm was already in the asked state (nothing written). */
export interface AlarmChange {
  alarm: Alarm;
  changed: boolean;
}

export interface AlarmRepository {
  /** the rule and device of every open alarm */
  openPairs(): Promise<{ rule_id: string | null; device_id: string | null }[]>;
  /**
   * Counts a trigger into the open alarm of the rule and device (count + 1, last_at, level and
   * message replaced), or opens a new one when there is none: `repeated` tells which.
   */
  raise(input: { rule_id: string | null; device_id: string | null; level: AlarmLevel; message: string; at: Date }): Promise<{ alarm: Alarm; repeated: boolean }>;
  /** null for an unknown id (and for one that is not a UUID) */
  find(id: string): Promise<Alarm | null>;
  /** active → acknowledged, keeping who and their note; unchanged when acknowledged or cleared already; 404 when gone */
  acknowledge(id: string, by: { username: string | null; note: string | null }, at: Date): Promise<AlarmChange>;
  /** open → cleared; unchanged when cleared already; 404 when gone */
  clear(id: string, at: Date): Promise<AlarmChange>;
  /** Clears the open alarm of a rule on a device; null when none is open. */
  clearOpen(ruleId: string | null, deviceId: string | null, at: Date): Promise<Alarm | null>;
  /** newest first (last_at, then id); total counts the whole filter */
  list(filter: AlarmFilter): Promise<Page<Alarm>>;
  /** The newest alarms of many devices in one query, at most `limitEach` per device: device id → alarms, newest first. */
  byDevices(deviceIds: string[], filter: { state?: AlarmState; limitEach: number }): Promise<Map<string, Alarm[]>>;
}

const OPEN = ['active', 'acknowledged'];
/** rule ids are UUIDs: the first '/' ends them */
const openKey = (ruleId: string | null, deviceId: string | null) => `${ruleId ?? ''}/${deviceId ?? ''}`;
/** attempts of raise() when another process opens or clears the same alarm in between */
const RAISE_ATTEMPTS = 5;

function toRow(m: Model): Alarm {
  const o = m.get({ plain: true }) as Record<string, unknown>;
  return {
    id: o.id as string,
    rule_id: (o.rule_id as string | null) ?? null,
    device_id: (o.device_id as string | null) ?? null,
    level: o.level as AlarmLevel,
    state: o.state as AlarmState,
    message: o.message as string,
    count: Number(o.count),
    first_at: iso(o.first_at)!,
    last_at: iso(o.last_at)!,
    acked_at: iso(o.acked_at),
    acked_by: (o.acked_by as string | null) ?? null,
    ack_note: (o.ack_note as string | null) ?? null,
    cleared_at: iso(o.cleared_at),
    created_at: iso(o.created_at)!,
    updated_at: iso(o.updated_at)!,
  };
}

export function createAlarmRepository(db: Db): AlarmRepository {
  const AlarmModel = db.models.Alarm;
  const countPlusOne = db.sequelize.literal(`${db.sequelize.getQueryInterface().quoteIdentifier('count')} + 1`);

  const byId = async (id: string) => {
    const row = isUuid(id) ? await AlarmModel.findByPk(id) : null;
    if (!row) throw notFound('alarm', id);
    return row;
  };

  /** One conditional UPDATE of alarm `id` while its state is one of `from`; then the row as it is. */
  const transition = async (id: string, from: string[], values: Record<string, unknown>): Promise<AlarmChange> => {
    const [n] = isUuid(id) ? await AlarmModel.update(values, { where: { id, state: from } }) : [0];
    return { alarm: toRow(await byId(id)), changed: n > 0 };
  };

  return {
    async openPairs() {
      const rows = await AlarmModel.findAll({ where: { state: OPEN }, attributes: ['rule_id', 'device_id'], raw: true });
      return rows as unknown as { rule_id: string | null; device_id: string | null }[];
    },
    async raise({ rule_id, device_id, level, message, at }) {
      const key = openKey(rule_id, device_id);
      for (let attempt = 0; attempt < RAISE_ATTEMPTS; attempt++) {
        const open = await AlarmModel.findOne({ where: { open_key: key }, attributes: ['id'] });
        if (open) {
          const id = open.get('id') as string;
          // count + 1 in the statement: two processes repeating the alarm at once both count
          const [n] = await AlarmModel.update({ count: countPlusOne, last_at: at, level, message }, { where: { id, open_key: key } });
          if (n > 0) return { alarm: toRow(await byId(id)), repeated: true };
          continue; // cleared in between: open a new one
        }
        try {
          const row = await AlarmModel.create({ rule_id, device_id, level, state: 'active', message, count: 1, first_at: at, last_at: at, open_key: key });
          return { alarm: toRow(row), repeated: false };
        } catch (err) {
          if (!(err instanceof UniqueConstraintError)) throw err;
          // another process opened it in between: count into theirs
        }
      }
      throw conflict(`the alarm of rule '${rule_id}' on device '${device_id}' kept changing while it was raised; try again`);
    },
    async find(id) {
      const row = isUuid(id) ? await AlarmModel.findByPk(id) : null;
      return row ? toRow(row) : null;
    },
    acknowledge(id, by, at) {
      return transition(id, ['active'], { state: 'acknowledged', acked_at: at, acked_by: by.username, ack_note: by.note });
    },
    clear(id, at) {
      return transition(id, OPEN, { state: 'cleared', cleared_at: at, open_key: null });
    },
    async clearOpen(ruleId, deviceId, at) {
      const open = await AlarmModel.findOne({ where: { open_key: openKey(ruleId, deviceId) }, attributes: ['id'] });
      if (!open) return null;
      const { alarm, changed } = await transition(open.get('id') as string, OPEN, { state: 'cleared', cleared_at: at, open_key: null });
      return changed ? alarm : null;
    },
    async list(filter) {
      const { limit, offset } = clampPage(filter);
      const where: WhereOptions = {};
      if (filter.state) Object.assign(where, { state: filter.state });
      if (filter.level) Object.assign(where, { level: filter.level });
      if (filter.rule_id) Object.assign(where, { rule_id: filter.rule_id });
      if (filter.device_id) Object.assign(where, { device_id: filter.device_id });
      const { rows, count } = await AlarmModel.findAndCountAll({ where, limit, offset, order: [['last_at', 'DESC'], ['id', 'ASC']] });
      return { items: rows.map(toRow), total: count, limit, offset };
    },
    async byDevices(deviceIds, filter) {
      const out = new Map<string, Alarm[]>(deviceIds.map((id) => [id, []]));
      if (deviceIds.length === 0) return out;
      const where: WhereOptions = { device_id: deviceIds };
      if (filter.state) Object.assign(where, { state: filter.state });
      // Bounded: no more rows than every device could show.
      const rows = await AlarmModel.findAll({ where, limit: Math.min(deviceIds.length * filter.limitEach, 100_000), order: [['last_at', 'DESC'], ['id', 'ASC']] });
      for (const r of rows) {
        const a = toRow(r);
        const list = out.get(a.device_id!);
        if (list && list.length < filter.limitEach) list.push(a);
      }
      return out;
    },
  };
}
