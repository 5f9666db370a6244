#!/usr/bin/env node
/**
 * `flux` / `npm start`: reads settings from the environment, starts FLUX, prints
 * `flux ready http=<port> mqtt=<port>`, and shuts down gracefully on SIGINT/SIGTERM.
 */
import { loadSettings } from '../settings.ts';
import { ConfigError } from './errors/index.ts';
import { createLogger } from './log/index.ts';
import { createFlux } from './app/index.ts';

const STOP_DEADLINE_MS = 4500;

function fail(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`flux: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`flux: failed to start: ${(err as Error)?.stack ?? err}\n`);
  process.exit(1);
}

let flux: ReturnType<typeof createFlux>;
try {
  const settings = loadSettings();
  const log = createLogger({ level: settings.logLevel as never });
  flux = createFlux({ settings, log });
  const ports = await flux.start().catch(fail);
  if (flux.tokenGenerated) {
    // Printed once, on the start that generated it; later starts read it from the data dir.
    process.stdout.write(`flux admin token (saved in ${settings.dataDir}/admin-token, shown once): ${flux.ctx.adminToken}\n`);
  }
  log.info({ http: ports.http, mqtt: ports.mqtt, dataDir: settings.dataDir, db: settings.db.dialect, ts: settings.ts.dialect }, 'listening');
  process.stdout.write(`flux ready http=${ports.http} mqtt=${ports.mqtt}\n`);
  process.stdout.write(`  editor  http://localhost:${ports.http}/editor   api http://localhost:${ports.http}/api   mqtt mqtt://localhost:${ports.mqtt}\n`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      log.error({ deadline_ms: STOP_DEADLINE_MS }, 'shutdown took too long; exiting');
      process.exit(1);
    }, STOP_DEADLINE_MS);
    timer.unref();
    flux.stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
} catch (err) {
  fail(err);
}
