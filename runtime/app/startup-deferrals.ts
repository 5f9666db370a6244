/**
 * Libraries FLUX's dependencies require while FLUX's modules are imported but that FLUX itself
 * does not use: deferred until first use (runtime/patches/module-deferral.ts; docs/operations.md "Memory").
 * runtime/cli.ts registers these around its import of the app.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { deferLibraries, type DeferringHooks } from '../patches/index.ts';

/** umzug/lib/cli.js's exports; `umzug/lib/index.js` re-exports them all (`__exportStar`). */
export const UMZUG_CLI_EXPORTS = ['UpAction', 'DownAction', 'ListAction', 'CreateAction', 'UmzugCLI'];
export const UMZUG_LIB_DIR = path.dirname(createRequire(import.meta.url).resolve('umzug'));

export function deferStartupLibraries(): DeferringHooks {
  // umzug's command-line interface (@rushstack/ts-command-line and its dependencies, ~4 MB of
  // idle RSS) loads with umzug; FLUX runs its migrations through the API only
  // (`new Umzug().up()`), so `UmzugCLI` loads only if something calls `umzug.getCli()`.
  return deferLibraries(UMZUG_LIB_DIR, { './cli': { exports: UMZUG_CLI_EXPORTS } });
}
