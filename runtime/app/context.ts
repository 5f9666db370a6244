/**
 * The one typed context every FLUX module receives (zigbee2mqtt's extension pattern): settings,
 * logger, registry, bus, metrics, and the services other modules registered while starting.
 */
import type { FluxSettings } from '../../settings.ts';
import type { Logger } from '../log/index.ts';
import type { Registry } from '../registry/index.ts';
import type { DeviceBus } from '../bus/index.ts';
import type { MetricsRegistry } from '../metrics/index.ts';
import type { Tracer } from '../trace/index.ts';
import type { UplinkJournal } from '../uplink-log/index.ts';

export interface ComponentHealth {
  ok: boolean;
  [detail: string]: unknown;
}

/** A part of the process with a lifecycle. stop() is idempotent; the root stops in reverse order. */
export interface FluxModule {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  health?(): Promise<ComponentHealth> | ComponentHealth;
}

export interface FluxContext {
  readonly settings: FluxSettings;
  readonly log: Logger;
  readonly registry: Registry;
  readonly bus: DeviceBus;
  readonly metrics: MetricsRegistry;
  /** the per-message trace: stages append spans by uplink id (`msg._msgid` in flows) */
  readonly trace: Tracer;
  readonly adminToken: string;
  /** every ingress appends an uplink here before acknowledging it, and it puts it on the bus */
  readonly journal: UplinkJournal;
  /** Services registered by modules at start; look them up by name (`ctx.services.get('broker')`). */
  readonly services: Map<string, unknown>;
}

export function service<T>(ctx: FluxContext, name: string): T {
  const s = ctx.services.get(name);
  if (s === undefined) throw new Error(`FLUX service '${name}' is not running`);
  return s as T;
}
