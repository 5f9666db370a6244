/**
 * Libraries FLUX's dependencies require while FLUX's modules are imported but that FLUX itself
 * does not use: deferred until first use (runtime/patches/module-deferral.ts; docs/operations.md "Memory").
 * runtime/cli.ts registers these around its import of the app.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { deferLibraries, type DeferringHooks } from '../patches/index.ts';

const require = createRequire(import.meta.url);

/** umzug/lib/cli.js's exports; `umzug/lib/index.js` re-exports them all (`__exportStar`). */
export const UMZUG_CLI_EXPORTS = ['UpAction', 'DownAction', 'ListAction', 'CreateAction', 'UmzugCLI'];
export const UMZUG_LIB_DIR = path.dirname(require.resolve('umzug'));
/** prom-client's default metrics (lib/metrics/processCpuTotal.js requires @opentelemetry/api) */
export const PROM_CLIENT_METRICS_DIR = path.join(path.dirname(require.resolve('prom-client')), 'lib', 'metrics');
/** sequelize/lib: sequelize.js, data-types.js and instance-validator.js require ./utils/validator-extras */
export const SEQUELIZE_LIB_DIR = path.dirname(require.resolve('sequelize'));

export function deferStartupLibraries(): DeferringHooks {
  const hooks = [
    // umzug's command-line interface (@rushstack/ts-command-line and its dependencies, ~4 MB of
    // idle RSS) loads with umzug; FLUX runs its migrations through the API only
    // (`new Umzug().up()`), so `UmzugCLI` loads only if something calls `umzug.getCli()`.
    deferLibraries(UMZUG_LIB_DIR, { './cli': { exports: UMZUG_CLI_EXPORTS } }),
    // processCpuTotal.js: `OtelApi.trace.getSpan(…)` in collect() only with exemplars enabled, which
    // runtime/metrics does not enable (@opentelemetry/api: 44 files, ~0.5 MB of heap).
    deferLibraries(PROM_CLIENT_METRICS_DIR, { '@opentelemetry/api': {} }),
    // `require('./utils/validator-extras').validator` at load (its module deep-clones the validator
    // package: 113 files, ~1.2 MB of heap); called only to check a value against a data type with
    // `typeValidation` or an attribute's `validate` option, neither of which FLUX's models use.
    deferLibraries(SEQUELIZE_LIB_DIR, { './utils/validator-extras': { members: ['validator'] } }),
  ];
  return { deregister: () => hooks.forEach((h) => h.deregister()) };
}
