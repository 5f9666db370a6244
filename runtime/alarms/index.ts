/**
 * @module alarms — the alarm center: alarms with a level, a source rule and device, first/last time
 * and a count; states active → acknowledged → cleared. A repeated trigger of an open alarm of the
 * same rule and device increments its count instead of adding a row. Events go to listeners
 * (the `flux alarm` node now, the WebSocket feed once it exists).
 */
import type { Model, WhereOptions } from 'sequelize';
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import { FluxError, conflict, notFound } from '../errors/index.ts';
import { counter } from '../metrics/index.ts';
import type { Feed } from '../feed/index.ts';

export type AlarmLevel = 'info' | 'warning' | 'critical';
export type AlarmState = 'active' | 'acknowledged' | 'cleared';
export const ALARM_LEVELS: readonly AlarmLevel[] = ['info', 'warning', 'critical'];
export const ALARM_STATES: readonly AlarmState[] = ['active', 'acknowledged', 'cleared'];

export interface Alarm {
  id: string;
  rule_id: string | null;
  device_id: string | null;
  level: AlarmLevel;
  state: AlarmState;
  message: string;
  count: number;
  first_at: string;
  last_at: string;
  acked_at: string | null;
  /** who acknowledged it (a user name, or `admin-token`) */
  acked_by: string | null;
  /** the note they left (what was done, who is on it) */
  ack_note: string | null;
  cleared_at: string | null;
  created_at: string;
  updated_at: string;
}

export interface RaiseInput {
  rule_id?: string | null;
  device_id?: string | null;
  level: AlarmLevel;
  message: string;
}

/** `raised`: a new alarm; `repeated`: an open one triggered again (count + 1). */
export interface AlarmEvent {
  type: 'raised' | 'repeated' | 'acknowledged' | 'cleared';
  alarm: Alarm;
}

export interface AlarmFilter {
  state?: AlarmState;
  level?: AlarmLevel;
  rule_id?: string;
  device_id?: string;
  limit?: number;
  offset?: number;
}

export interface AlarmCenter extends FluxModule {
  raise(input: RaiseInput): Promise<Alarm>;
  /** acknowledges an active alarm, keeping who did it and their note */
  ack(id: string, by?: { username?: string | null; note?: string | null }): Promise<Alarm>;
  clear(id: string): Promise<Alarm>;
  /** Clears the open alarm of a rule on a device (auto-clear when the rule evaluates false again). */
  clearFor(ruleId: string, deviceId: string | null): Promise<Alarm | null>;
  /** Cheap in-memory check, so a rule evaluating false does not read the database each time. */
  hasOpen(ruleId: string, deviceId: string | null): boolean;
  get(id: string): Promise<Alarm>;
  list(filter: AlarmFilter): Promise<{ items: Alarm[]; total: number; limit: number; offset: number }>;
  /** The newest alarms of many devices in one query (at most `limitEach` per device): device id → alarms, newest first. */
  byDevices(deviceIds: string[], filter?: { state?: AlarmState; limitEach?: number }): Promise<Map<string, Alarm[]>>;
  /** Subscribes to alarm events; returns the unsubscribe function. */
  on(listener: (ev: AlarmEvent) => void): () => void;
}

const OPEN: AlarmState[] = ['active', 'acknowledged'];
const keyOf = (ruleId: string | null | undefined, deviceId: string | null | undefined) => `${ruleId ?? ''}\u0000${deviceId ?? ''}`;

function plain(m: Model): Alarm {
  const o = m.get({ plain: true }) as Record<string, unknown>;
  for (const k of Object.keys(o)) if (o[k] instanceof Date) o[k] = (o[k] as Date).toISOString();
  o.count = Number(o.count);
  return o as unknown as Alarm;
}

/** `feed`: the live feed that shows alarm events, when there is one. */
export function createAlarmCenter(ctx: FluxContext, feed?: Pick<Feed, 'publish'>): AlarmCenter {
  const log = ctx.log.child({ module: 'alarms' });
  const { Alarm: AlarmModel } = ctx.registry.models;
  const listeners = new Set<(ev: AlarmEvent) => void>();
  /** rule+device keys with an open alarm (loaded at start, kept current by this process) */
  const open = new Set<string>();
  /** one operation at a time per rule+device, so two quick triggers cannot create two rows */
  const chains = new Map<string, Promise<unknown>>();
  const events = counter(ctx.metrics, 'flux_alarm_events_total', 'Alarm events by type and level', ['type', 'level']);

  const emit = (type: AlarmEvent['type'], alarm: Alarm) => {
    events.inc({ type, level: alarm.level });
    feed?.publish({ type: 'alarm', event: type, device_id: alarm.device_id ?? undefined, ts: Date.now(), alarm });
    for (const l of listeners) {
      try {
        l({ type, alarm });
      } catch (err) {
        log.error({ err }, 'alarm listener failed');
      }
    }
  };

  function serial<T>(key: string, op: () => Promise<T>): Promise<T> {
    const prev = chains.get(key) ?? Promise.resolve();
    const next = prev.then(op, op);
    const tail = next.catch(() => undefined);
    chains.set(key, tail);
    void tail.then(() => {
      if (chains.get(key) === tail) chains.delete(key);
    });
    return next;
  }

  async function row(id: string): Promise<Model> {
    const r = /^[0-9a-f-]{36}$/i.test(id) ? await AlarmModel.findByPk(id) : null;
    if (!r) throw notFound('alarm', id);
    return r;
  }

  const center: AlarmCenter = {
    name: 'alarms',
    async start() {
      const rows = await AlarmModel.findAll({ where: { state: OPEN }, attributes: ['rule_id', 'device_id'] });
      for (const r of rows) open.add(keyOf(r.get('rule_id') as string | null, r.get('device_id') as string | null));
    },
    async stop() {
      await Promise.allSettled([...chains.values()]);
      listeners.clear();
    },
    health(): ComponentHealth {
      return { ok: true, open: open.size };
    },
    raise(input) {
      if (!ALARM_LEVELS.includes(input.level)) return Promise.reject(new FluxError('bad_request', `alarm level must be one of ${ALARM_LEVELS.join(', ')}`));
      const key = keyOf(input.rule_id, input.device_id);
      return serial(key, async () => {
        const now = new Date();
        const message = String(input.message ?? '').slice(0, 1000);
        const existing = await AlarmModel.findOne({ where: { rule_id: input.rule_id ?? null, device_id: input.device_id ?? null, state: OPEN }, order: [['first_at', 'DESC']] });
        if (existing) {
          await existing.update({ count: Number(existing.get('count')) + 1, last_at: now, level: input.level, message });
          open.add(key);
          const a = plain(existing);
          emit('repeated', a);
          return a;
        }
        const created = await AlarmModel.create({
          rule_id: input.rule_id ?? null,
          device_id: input.device_id ?? null,
          level: input.level,
          state: 'active',
          message,
          count: 1,
          first_at: now,
          last_at: now,
        });
        open.add(key);
        const a = plain(created);
        emit('raised', a);
        return a;
      });
    },
    async ack(id, by = {}) {
      const r = await row(id);
      return serial(keyOf(r.get('rule_id') as string | null, r.get('device_id') as string | null), async () => {
        await r.reload();
        const state = r.get('state') as AlarmState;
        if (state === 'cleared') throw conflict(`alarm '${id}' is cleared; only an active alarm can be acknowledged`);
        if (state === 'acknowledged') return plain(r);
        await r.update({ state: 'acknowledged', acked_at: new Date(), acked_by: by.username ?? null, ack_note: by.note ?? null });
        const a = plain(r);
        emit('acknowledged', a);
        return a;
      });
    },
    async clear(id) {
      const r = await row(id);
      const key = keyOf(r.get('rule_id') as string | null, r.get('device_id') as string | null);
      return serial(key, async () => {
        await r.reload();
        if (r.get('state') === 'cleared') return plain(r);
        await r.update({ state: 'cleared', cleared_at: new Date() });
        open.delete(key);
        const a = plain(r);
        emit('cleared', a);
        return a;
      });
    },
    clearFor(ruleId, deviceId) {
      const key = keyOf(ruleId, deviceId);
      return serial(key, async () => {
        const r = await AlarmModel.findOne({ where: { rule_id: ruleId, device_id: deviceId, state: OPEN } });
        open.delete(key);
        if (!r) return null;
        await r.update({ state: 'cleared', cleared_at: new Date() });
        const a = plain(r);
        emit('cleared', a);
        return a;
      });
    },
    hasOpen(ruleId, deviceId) {
      return open.has(keyOf(ruleId, deviceId));
    },
    async get(id) {
      return plain(await row(id));
    },
    async list(filter) {
      const limit = Math.min(Math.max(filter.limit ?? 50, 1), 1000);
      const offset = Math.max(filter.offset ?? 0, 0);
      const where: WhereOptions = {};
      if (filter.state) Object.assign(where, { state: filter.state });
      if (filter.level) Object.assign(where, { level: filter.level });
      if (filter.rule_id) Object.assign(where, { rule_id: filter.rule_id });
      if (filter.device_id) Object.assign(where, { device_id: filter.device_id });
      const { rows, count } = await AlarmModel.findAndCountAll({ where, limit, offset, order: [['last_at', 'DESC'], ['id', 'ASC']] });
      return { items: rows.map(plain), total: count, limit, offset };
    },
    async byDevices(deviceIds, filter = {}) {
      const out = new Map<string, Alarm[]>(deviceIds.map((id) => [id, []]));
      if (deviceIds.length === 0) return out;
      const limitEach = Math.min(Math.max(filter.limitEach ?? 50, 1), 1000);
      const where: WhereOptions = { device_id: deviceIds };
      if (filter.state) Object.assign(where, { state: filter.state });
      // Bounded: no more rows than every device could show.
      const rows = await AlarmModel.findAll({ where, limit: Math.min(deviceIds.length * limitEach, 100_000), order: [['last_at', 'DESC'], ['id', 'ASC']] });
      for (const r of rows) {
        const a = plain(r);
        const list = out.get(a.device_id!);
        if (list && list.length < limitEach) list.push(a);
      }
      return out;
    },
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return center;
}
