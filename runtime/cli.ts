#!/usr/bin/env node
/**
 * `flux` / `npm start`: reads settings from the environment, starts FLUX, prints
 * `flux ready http=<port> mqtt=<port>`, and shuts down gracefully on SIGINT/SIGTERM.
 * `flux export` / `flux import` move a project between running instances (runtime/project/cli.ts).
 *
 * Memory (docs/operations.md "Memory"): the process re-executes itself once, in place (same pid,
 * `process.execve`), when it was started without FLUX's runtime settings: a 32 MiB V8 semi-space
 * (a smaller one saved idle RSS only before the GC after start; under load it tripled the time in
 * scavenges and the pipeline's p99, docs/operations.md "Memory"), glibc limited to 2 malloc
 * arenas with a fixed mmap threshold, FLUX's sources type-stripped once and kept in FLUX_TS_CACHE
 * (the TypeScript stripper is then never loaded; runtime/patches/ts-strip-cache.js), and
 * NODE_ENV=production unless NODE_ENV is set. Only `node:` modules are imported before that point.
 * `FLUX_REEXEC=0` turns it off. While the app's modules are imported, libraries they require but do
 * not use are deferred until first use (runtime/app/startup-deferrals.ts).
 */
import os from 'node:os';
import path from 'node:path';

/** V8 flags FLUX runs with; `npm start` and the Docker image pass them already. */
const NODE_FLAGS = ['--max-semi-space-size=32'];
const TS_STRIP_CACHE_HOOK = new URL('./patches/ts-strip-cache.js', import.meta.url).href;

function relaunchWithRuntimeSettings(): void {
  if (process.env.FLUX_REEXEC === '0' || typeof process.execve !== 'function') return;
  const env: NodeJS.ProcessEnv = { ...process.env, FLUX_REEXEC: '0' };
  let needed = false;
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map((a) => a.split('=')[0]);
  const flags = NODE_FLAGS.filter((f) => !given.includes(f.split('=')[0]));
  if (flags.length > 0) needed = true;
  if (env.MALLOC_ARENA_MAX === undefined) {
    env.MALLOC_ARENA_MAX = '2';
    needed = true;
  }
  // A fixed mmap threshold: glibc's moving one rises to the largest block freed, after which blocks
  // that size stay in the heap once freed. Each login's scrypt (16 MiB, runtime/users) then kept
  // ~8 MiB of RSS for good: 119 -> 151 MB after four logins (docs/operations.md "Memory").
  if (env.MALLOC_MMAP_THRESHOLD_ === undefined) {
    env.MALLOC_MMAP_THRESHOLD_ = String(4 * 1024 * 1024);
    needed = true;
  }
  // Production mode, as the Docker image runs: libraries drop their development checks (graphql-js'
  // cross-realm instanceOf cost ~15 % of a GraphQL query's CPU) and express' error pages their stacks.
  if (env.NODE_ENV === undefined) {
    env.NODE_ENV = 'production';
    needed = true;
  }
  // FLUX's sources type-stripped once and kept on disk (runtime/patches/ts-strip-cache.js): neither
  // Node's TypeScript stripper nor its compile cache stays in memory. Worker threads inherit the flag.
  // An operator's NODE_COMPILE_CACHE is left to do what it does.
  if (env.FLUX_TS_CACHE === undefined && env.NODE_COMPILE_CACHE === undefined) {
    env.FLUX_TS_CACHE = path.join(os.tmpdir(), `flux-ts-cache-${process.getuid?.() ?? 'user'}`);
    needed = true;
  }
  if (env.FLUX_TS_CACHE && !process.execArgv.includes(TS_STRIP_CACHE_HOOK)) {
    flags.push('--import', TS_STRIP_CACHE_HOOK);
    needed = true;
  }
  if (!needed) return;
  try {
    process.execve(process.execPath, [process.execPath, ...flags, ...process.execArgv, ...process.argv.slice(1)], env);
  } catch {
    // execve failed (e.g. a sandbox forbids it): carry on in this process, with Node's defaults.
  }
}

// `flux export` / `flux import` talk to a running FLUX through its API; they start nothing here.
if (process.argv[2] === 'export' || process.argv[2] === 'import') {
  const { runProjectCli } = await import('./project/cli.ts');
  process.exit(await runProjectCli(process.argv.slice(2)));
}

relaunchWithRuntimeSettings();

const { deferStartupLibraries } = await import('./app/startup-deferrals.ts');
const { quietMqttPacketDebug } = await import('./patches/index.ts');
const deferring = deferStartupLibraries();
// before the broker's modules load: mqtt-packet then gets loggers that cost nothing while off
const quieting = quietMqttPacketDebug();
const { loadSettings } = await import('../settings.ts');
const { ConfigError } = await import('./errors/index.ts');
const { createLogger } = await import('./log/index.ts');
const { createFlux } = await import('./app/index.ts');
const { collectAllGarbage } = await import('./memory/index.ts');
deferring.deregister();
const mqttPacketLoggers = quieting.deregister();

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
  if (mqttPacketLoggers === 0) log.warn('mqtt-packet loaded before runtime/patches/mqtt-packet-debug.ts could hook it: its idle loggers allocate on every packet');
  flux = createFlux({ settings, log });
  const ports = await flux.start().catch(fail);
  // One memory-reducing full GC once started: starting leaves garbage (most of the parsed code and
  // data of loading) and a grown young generation that V8 keeps resident while idle; this gives
  // ~15 MB back for a pause of ~80 ms before the ready line (docs/operations.md "Memory").
  collectAllGarbage();
  if (flux.tokenGenerated) {
    // Printed once, on the start that generated it; later starts read it from the data dir.
    process.stdout.write(`flux admin token (saved in ${settings.dataDir}/admin-token, shown once): ${flux.ctx.adminToken}\n`);
  }
  const password = flux.users.generatedAdminPassword;
  if (password) {
    // Only its scrypt hash is kept: this line is the one chance to read it (runtime/users).
    process.stdout.write(`flux admin user "admin", password (shown once; change it in the console under System): ${password}\n`);
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
