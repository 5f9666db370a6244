/**
 * The typed context every FLUX module receives: settings, logger, registry, bus, metrics, trace and
 * the uplink journal. Modules that need another module get it as a typed argument from the
 * composition root (runtime/app/index.ts), never by name.
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
}
