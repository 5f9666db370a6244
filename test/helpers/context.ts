/**
 * A FluxContext for in-process module tests: real registry (SQLite in the settings' data dir),
 * bus, metrics and trace, and a logger whose JSON lines are kept in `logs` for assertions.
 */
import { Writable } from 'node:stream';
import type { FluxSettings } from '../../settings.ts';
import type { FluxContext } from '../../runtime/app/index.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { createRegistry } from '../../runtime/registry/index.ts';
import { createDeviceBus } from '../../runtime/bus/index.ts';
import { createMetrics } from '../../runtime/metrics/index.ts';
import { createTracer } from '../../runtime/trace/index.ts';
import { createUplinkLogModule } from '../../runtime/uplink-log/index.ts';
import { TEST_TOKEN } from './flux-process.ts';

export async function testContext(settings: FluxSettings, opts: { busHighWater?: number } = {}): Promise<{ ctx: FluxContext; logs: Record<string, any>[] }> {
  const logs: Record<string, any>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const log = createLogger({ level: 'debug', destination: sink });
  const registry = createRegistry({ db: settings.db, log });
  await registry.start();
  const bus = createDeviceBus(log, { highWater: opts.busHighWater });
  const metrics = createMetrics();
  const uplinkLog = createUplinkLogModule({ settings, bus, logger: log, metrics });
  await uplinkLog.start();
  await uplinkLog.replay(); // no flows here: uplinks go straight to the bus
  const ctx: FluxContext = {
    settings,
    log,
    registry,
    bus,
    metrics,
    trace: createTracer(),
    adminToken: settings.adminToken ?? TEST_TOKEN,
    journal: uplinkLog.journal,
  };
  return { ctx, logs };
}
