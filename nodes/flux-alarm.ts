/**
 * `flux alarm`: alarm events into the flow, and alarms from the flow. Output: one message per alarm
 * event (`raised`, `repeated`, `acknowledged`, `cleared`) of the chosen levels, `msg.payload` = the
 * alarm. Input (optional): raises an alarm for the message's device, e.g. wired after `flux rule`.
 */
import type { NodeAPI, Node, NodeDef } from './red.ts';
import { countedText, fluxOf } from './red.ts';
import { ALARM_LEVELS, type AlarmEvent, type AlarmLevel } from '../runtime/alarms/index.ts';

interface AlarmDef extends NodeDef {
  /** comma-separated levels to emit; empty: all */
  levels?: string;
  /** comma-separated event types to emit; empty: all */
  events?: string;
  /** level of alarms raised from input messages (msg.alarm.level overrides) */
  level?: string;
  /** message of alarms raised from input; `{{values.x}}` placeholders are filled from msg.payload */
  message?: string;
}

const list = (s: string | undefined) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean);

function fill(template: string, payload: unknown): string {
  return template.replace(/\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g, (_m, path: string) => {
    let v: unknown = payload;
    for (const k of path.split('.')) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
    return v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  });
}

export default function register(RED: NodeAPI): void {
  function FluxAlarm(this: Node, def: AlarmDef): void {
    RED.nodes.createNode(this, def);
    const flux = fluxOf(RED);
    const node = this;
    const levels = new Set(list(def.levels));
    const types = new Set(list(def.events));
    let count = 0;

    const onEvent = (ev: AlarmEvent) => {
      if (levels.size && !levels.has(ev.alarm.level)) return;
      if (types.size && !types.has(ev.type)) return;
      count++;
      node.status({ fill: ev.alarm.level === 'critical' ? 'red' : ev.alarm.level === 'warning' ? 'yellow' : 'blue', shape: 'dot', text: countedText(RED, 'flux-alarm.status.events', { count, type: ev.type, level: ev.alarm.level }) });
      node.send({ topic: `alarm/${ev.type}`, event: ev.type, payload: ev.alarm, device: ev.alarm.device_id ? { id: ev.alarm.device_id } : undefined });
    };
    // The alarm center starts before Node-RED's flows.
    const unsubscribe = flux.alarms.on(onEvent);

    node.on('input', async (msg, _send, done) => {
      try {
        const center = flux.alarms;
        const given = (msg.alarm ?? {}) as { level?: string; message?: string };
        const level = (given.level ?? def.level ?? 'warning') as AlarmLevel;
        if (!ALARM_LEVELS.includes(level)) throw new Error(`alarm level must be one of ${ALARM_LEVELS.join(', ')}`);
        const payload = msg.payload as { device_id?: string } | undefined;
        const rule = msg.rule as { id?: string | null; name?: string } | undefined;
        const deviceId = payload?.device_id ?? (msg.device as { id?: string } | undefined)?.id ?? null;
        const text = given.message ?? (def.message ? fill(def.message, payload) : (rule?.name ?? 'alarm'));
        await center.raise({ rule_id: rule?.id || null, device_id: deviceId, level, message: text });
        done();
      } catch (err) {
        done(err as Error);
      }
    });
    node.on('close', (_removed, done) => {
      unsubscribe();
      done();
    });
  }
  RED.nodes.registerType('flux alarm', FluxAlarm);
}
