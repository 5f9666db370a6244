/** Prometheus figures of the Modbus master (GET /api/metrics): per endpoint requests, errors by reason, latency. */
import { counter, gauge, histogram, type MetricsRegistry } from '../metrics/index.ts';
import type { FailureReason } from './frame.ts';

export interface ModbusMetrics {
  request(endpoint: string, ok: boolean, ms: number, reason?: FailureReason): void;
  poll(outcome: 'ok' | 'failed' | 'overrun'): void;
  units(polled: number, online: number, endpoints: number): void;
}

export function createModbusMetrics(registry: MetricsRegistry): ModbusMetrics {
  const requests = counter(registry, 'flux_modbus_requests_total', 'Modbus requests finished, per endpoint', ['endpoint']);
  const errors = counter(registry, 'flux_modbus_request_errors_total', 'Modbus requests failed, per endpoint and reason (timeout, exception, connection, protocol, queue_full, closed)', ['endpoint', 'reason']);
  const latency = histogram(registry, 'flux_modbus_request_seconds', 'Modbus request sent → answer received, per endpoint', ['endpoint'], [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]);
  const polls = counter(registry, 'flux_modbus_polls_total', 'polls of Modbus devices by outcome (ok, failed, overrun: skipped because the previous one still ran)', ['outcome']);
  const polled = gauge(registry, 'flux_modbus_devices', 'Modbus devices polled, and how many of them answer', ['state']);
  const endpointCount = gauge(registry, 'flux_modbus_endpoints', 'Modbus endpoints (connections) in use');
  return {
    request(endpoint, ok, ms, reason) {
      requests.inc({ endpoint });
      if (!ok) errors.inc({ endpoint, reason: reason ?? 'unknown' });
      else latency.observe({ endpoint }, ms / 1000);
    },
    poll: (outcome) => polls.inc({ outcome }),
    units(n, online, endpoints) {
      polled.set({ state: 'polled' }, n);
      polled.set({ state: 'online' }, online);
      endpointCount.set(endpoints);
    },
  };
}
