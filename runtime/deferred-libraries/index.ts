/**
 * @module deferred-libraries — loads a library that a dependency requires while loading, but uses
 * only later, when it is first used (docs/operations.md "Memory").
 *
 * FLUX loads code it rarely runs: Node-RED's whole core palette (got, cheerio, mqtt, … for flows a
 * user may import), umzug's command-line interface, Node-RED's JSONata engine. Each holds V8 heap
 * for the life of the process. `deferLibraries(dir, table)` answers the listed requires made from
 * inside `dir` with stand-ins that load the real library on first use. Only a library the requirer
 * does not use while loading can be deferred, so each caller's table says how each one is used.
 * The hooks are meant to be registered only while the requirers load, then deregistered.
 */
export { deferLibraries, type DeferredLibrary, type DeferringHooks } from './deferral.ts';
