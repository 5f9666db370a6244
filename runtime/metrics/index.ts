/** @module metrics — one prom-client registry per FLUX instance (no global state), served at /api/metrics. */
import { Registry, collectDefaultMetrics, Counter, Gauge, Histogram } from 'prom-client';

export { Counter, Gauge, Histogram };
export type MetricsRegistry = Registry;

export function createMetrics(): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'flux' });
  collectDefaultMetrics({ register: registry, prefix: 'flux_' });
  return registry;
}

/** Gets a metric by name or creates it once; modules share one registry without ordering issues. */
export function counter(registry: Registry, name: string, help: string, labelNames: string[] = []): Counter {
  return (registry.getSingleMetric(name) as Counter | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] });
}

export function gauge(registry: Registry, name: string, help: string, labelNames: string[] = []): Gauge {
  return (registry.getSingleMetric(name) as Gauge | undefined) ?? new Gauge({ name, help, labelNames, registers: [registry] });
}

export function histogram(registry: Registry, name: string, help: string, labelNames: string[] = [], buckets?: number[]): Histogram {
  return (
    (registry.getSingleMetric(name) as Histogram | undefined) ??
    new Histogram({ name, help, labelNames, registers: [registry], ...(buckets ? { buckets } : {}) })
  );
}
