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

/** One labelled series of a counter made by `tallyCounter`: `add` bumps a number and nothing else. */
export interface Tally {
  add(n?: number): void;
}

/**
 * A counter for a per-uplink path. prom-client's `inc` hashes the labels into a string and answers
 * an object on every call; here each labelled series is a plain number that the prom-client counter
 * takes when it is read (its `collect` hook), so reads stay exact and an uplink allocates nothing.
 */
export function tallyCounter(registry: Registry, name: string, help: string, labelNames: string[] = []): { counter: Counter; tally(labels?: Record<string, string>): Tally } {
  const pending: { labels: Record<string, string>; n: number }[] = [];
  const existing = registry.getSingleMetric(name) as Counter | undefined;
  const counter =
    existing ??
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect(this: Counter) {
        for (const p of pending) {
          if (p.n === 0) continue;
          this.inc(p.labels, p.n);
          p.n = 0;
        }
      },
    });
  return {
    counter,
    tally(labels = {}) {
      // registered elsewhere first (no collect hook of ours): counted straight into it
      if (existing) return { add: (n = 1) => counter.inc(labels, n) };
      const p = { labels, n: 0 };
      pending.push(p);
      return { add: (n = 1) => void (p.n += n) };
    },
  };
}
