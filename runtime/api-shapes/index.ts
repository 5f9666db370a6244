/**
 * @module api-shapes — rows the REST API answers that the operator console reads too, declared once
 * here. This file imports nothing, so the console imports these types (`import type`, erased from
 * its bundle) and its typecheck never reaches server code. The server's own modules re-export them
 * from their faces: the registry (Alarm, Device), the rule engine (RuleStatsView), the Modbus
 * master (UnitStatus).
 */

export type AlarmLevel = 'info' | 'warning' | 'critical';
export type AlarmState = 'active' | 'acknowledged' | 'cleared';

/** An alarm as stored and as the alarm center (runtime/alarms) hands it out. */
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

export interface Device {
  id: string;
  product_id: string;
  name: string;
  enabled: boolean;
  status: 'online' | 'offline';
  last_online: string | null;
  tags: Record<string, unknown>;
  /** may report and receive commands for its children (devices whose gateway_id names it) */
  is_gateway: boolean;
  /** the gateway this device reports through, or null */
  gateway_id: string | null;
  /** the device's own transport settings, e.g. `{ modbus: { host, port, unit, mode } }`; null when none */
  transport: Record<string, unknown> | null;
  created_at: string;
  updated_at: string;
}

export interface ActionFailure {
  at: string;
  action: string;
  error: string;
  attempts: number;
}

export interface RuleStatsView {
  runs: number;
  triggers: number;
  errors: number;
  last_error: { at: string; code: string; message: string } | null;
  /** over the last 1024 runs */
  mean_micros: number;
  p99_micros: number;
  actions_ok: number;
  actions_failed: number;
  commands_sent: number;
  /** send_command calls dropped by the per-rule rate limit */
  commands_rate_limited: number;
  /** the newest action failures (webhook after its retries, command, alarm), newest last */
  action_failures: ActionFailure[];
}

/** One polled Modbus unit in `GET /api/modbus` (runtime/modbus/master.ts). */
export interface UnitStatus {
  device_id: string;
  unit: number;
  online: boolean;
  consecutive_failures: number;
  last_error: string | null;
  last_ok: string | null;
  polls: number;
  overruns: number;
}
