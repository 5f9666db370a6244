/**
 * @module alarms — the alarm center: alarms with a level, a source rule and device, first/last time
 * and a count; states active → acknowledged → cleared. A repeated trigger of an open alarm of the
 * same rule and device increments its count instead of adding a row. Events go to listeners
 * (the `flux alarm` node now, the WebSocket feed once it exists).
 */
import type { FluxModule, ComponentHealth } from '../app/context.ts';
import type { Alarm, AlarmFilter, AlarmLevel, AlarmRepository, AlarmState } from '../registry/index.ts';
import type { Logger } from '../log/index.ts';
import type { MetricsRegistry } from '../metrics/index.ts';
import { FluxError, conflict, notFound } from '../errors/index.ts';
import { counter } from '../metrics/index.ts';
import type { Feed } from '../feed/index.ts';

export type { Alarm, AlarmFilter, AlarmLevel, AlarmState };
export const ALARM_LEVELS: readonly AlarmLevel[] = ['info', 'warning', 'critical'];
export const ALARM_STATES: readonly AlarmState[] = ['active', 'acknowledged', 'cleared'];

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
  /**
   * An alarm event of another node of a cluster (runtime/cluster/changes.ts): it goes to this node's
   * live feed and keeps the open pairs current (a rule's auto_clear here clears what another node
   * opened). Listeners (the `flux alarm` node) are not called: each event runs the flows once, on its node.
   */
  applyRemote(ev: AlarmEvent): void;
}

const keyOf = (ruleId: string | null | undefined, deviceId: string | null | undefined) => `${ruleId ?? ''}\u0000${deviceId ?? ''}`;

/** Stored alarms have a level raise() checked. */

export interface AlarmCenterDeps {
  /** where alarms are kept */
  store: AlarmRepository;
  log: Logger;
  metrics: MetricsRegistry;
  /** the live feed that shows alarm events, when there is one */
  feed?: Pick<Feed, 'publish'>;
  /** called with every event of this node (cluster mode tells the other nodes) */
  onEvent?: (ev: AlarmEvent) => void;
}

export function createAlarmCenter(deps: AlarmCenterDeps): AlarmCenter {
  const { store, feed } = deps;
  const log = deps.log.child({ module: 'alarms' });
  const listeners = new Set<(ev: AlarmEvent) => void>();
  /** rule+device keys with an open alarm (loaded at start, kept current by this process) */
  const open = new Set<string>();
  /** one operation at a time per rule+device, so its events go out in order (one open row per pair is the repository's: runtime/registry/repositories/alarms.ts) */
  const chains = new Map<string, Promise<unknown>>();
  const events = counter(deps.metrics, 'flux_alarm_events_total', 'Alarm events by type and level', ['type', 'level']);

  const toFeed = (type: AlarmEvent['type'], alarm: Alarm) => feed?.publish({ type: 'alarm', event: type, device_id: alarm.device_id ?? undefined, ts: Date.now(), alarm });
  const emit = (type: AlarmEvent['type'], alarm: Alarm) => {
    events.inc({ type, level: alarm.level });
    toFeed(type, alarm);
    deps.onEvent?.({ type, alarm });
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

  async function find(id: string): Promise<Alarm> {
    const a = await store.find(id);
    if (!a) throw notFound('alarm', id);
    return a;
  }

  const center: AlarmCenter = {
    name: 'alarms',
    async start() {
      for (const p of await store.openPairs()) open.add(keyOf(p.rule_id, p.device_id));
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
        const message = String(input.message ?? '').slice(0, 1000);
        const { alarm, repeated } = await store.raise({ rule_id: input.rule_id ?? null, device_id: input.device_id ?? null, level: input.level, message, at: new Date() });
        open.add(key);
        emit(repeated ? 'repeated' : 'raised', alarm);
        return alarm;
      });
    },
    async ack(id, by = {}) {
      const r = await find(id);
      return serial(keyOf(r.rule_id, r.device_id), async () => {
        const { alarm, changed } = await store.acknowledge(id, { username: by.username ?? null, note: by.note ?? null }, new Date());
        if (alarm.state === 'cleared') throw conflict(`alarm '${id}' is cleared; only an active alarm can be acknowledged`);
        if (changed) emit('acknowledged', alarm);
        return alarm;
      });
    },
    async clear(id) {
      const r = await find(id);
      const key = keyOf(r.rule_id, r.device_id);
      return serial(key, async () => {
        const { alarm, changed } = await store.clear(id, new Date());
        if (!changed) return alarm;
        open.delete(key);
        emit('cleared', alarm);
        return alarm;
      });
    },
    clearFor(ruleId, deviceId) {
      const key = keyOf(ruleId, deviceId);
      return serial(key, async () => {
        const cleared = await store.clearOpen(ruleId, deviceId, new Date());
        open.delete(key);
        if (!cleared) return null;
        emit('cleared', cleared);
        return cleared;
      });
    },
    applyRemote({ type, alarm }) {
      const key = keyOf(alarm.rule_id, alarm.device_id);
      if (type === 'cleared') open.delete(key);
      else open.add(key);
      toFeed(type, alarm);
    },
    hasOpen(ruleId, deviceId) {
      return open.has(keyOf(ruleId, deviceId));
    },
    get: find,
    async list(filter) {
      return store.list(filter);
    },
    async byDevices(deviceIds, filter = {}) {
      const limitEach = Math.min(Math.max(filter.limitEach ?? 50, 1), 1000);
      return store.byDevices(deviceIds, { state: filter.state, limitEach });
    },
    on(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return center;
}
