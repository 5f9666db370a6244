// @ts-check
/**
 * Fenced loader hook: FLUX's TypeScript sources, type-stripped once and kept on disk, so that a
 * started FLUX loads neither Node's TypeScript stripper nor Node's compile cache
 * (docs/operations.md "Memory").
 *
 * Why: Node strips types with amaro (swc compiled to Wasm): ~25 MB of RSS for the life of the
 * process once it has loaded. Node's compile cache (NODE_COMPILE_CACHE) avoids that, but keeps every
 * cache entry it read in malloc'd memory until exit (~8 MB: the code caches of ~1,400 files), with
 * no way to release them. This hook keeps only the stripped text of FLUX's own .ts files, keyed by a
 * hash of the source and Node's version; modules then compile lazily as they would without a cache.
 * Starting takes as long as with the compile cache (1.7–1.8 s on a 2-core machine).
 *
 * JavaScript, not TypeScript: it is what loads FLUX's TypeScript, so loading it must not need the
 * stripper. runtime/cli.ts preloads it (`--import`, which worker threads inherit) and names the
 * folder in FLUX_TS_CACHE; without that variable importing it does nothing. A folder that is not a
 * directory private to this user is not used (another user could plant code in it): every .ts is
 * then stripped in memory, as Node does. `tsStripCacheShape()` checks the Node API it relies on
 * (test/patches/upstream-shape.test.ts); test/patches/ts-strip-cache.test.ts checks the hook.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { registerHooks, stripTypeScriptTypes } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';

/** The checkout's root: only .ts files under it, outside node_modules, are FLUX's. */
const ROOT_URL = new URL('../../', import.meta.url).href;

/** More entries than this (old versions of the sources pile up) and the folder is emptied at start. */
const MAX_ENTRIES = 4000;

/**
 * The folder, made if missing, when it is a directory owned by this user that nobody else can
 * write to; otherwise null (with the reason).
 * @param {string} dir
 * @returns {{ dir: string | null, reason?: string }}
 */
export function privateCacheDir(dir) {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.lstatSync(dir);
    if (!st.isDirectory()) return { dir: null, reason: 'not a directory' };
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) return { dir: null, reason: 'owned by another user' };
    if ((st.mode & 0o022) !== 0) return { dir: null, reason: 'writable by other users' };
    // pruned by the process's start, not again by each worker thread that preloads the hook
    if (isMainThread) {
      const entries = fs.readdirSync(dir);
      if (entries.length > MAX_ENTRIES) for (const e of entries) fs.rmSync(path.join(dir, e), { force: true });
    }
    return { dir };
  } catch (err) {
    return { dir: null, reason: /** @type {Error} */ (err).message };
  }
}

/**
 * Types stripped as Node strips them (positions kept, so stack traces point at the .ts lines),
 * without the experimental-API warning the first call would print at every cold start.
 * @param {string} source
 * @returns {string}
 */
function strip(source) {
  const emitWarning = process.emitWarning;
  process.emitWarning = /** @type {typeof process.emitWarning} */ (
    (/** @type {any} */ warning, /** @type {any[]} */ ...rest) => {
      if (String(warning).includes('stripTypeScriptTypes')) return;
      emitWarning.call(process, warning, ...rest);
    }
  );
  try {
    return stripTypeScriptTypes(source, { mode: 'strip' });
  } finally {
    process.emitWarning = emitWarning;
  }
}

/**
 * The file name of a source's entry: Node's version is part of the key, as its stripper may change.
 * @param {string} source
 * @returns {string}
 */
export function entryName(source) {
  return `${createHash('sha256').update(process.version).update('\0').update(source).digest('hex')}.js`;
}

/**
 * The stripped text of one source: read from the folder, or stripped and written there (whole or
 * not at all: other FLUX processes may read the same entry at the same time).
 * @param {string} source
 * @param {string | null} dir
 * @returns {string}
 */
export function strippedSource(source, dir) {
  if (dir === null) return strip(source);
  const entry = path.join(dir, entryName(source));
  try {
    return fs.readFileSync(entry, 'utf8');
  } catch {
    const js = strip(source);
    const partial = `${entry}.${process.pid}.${process.hrtime.bigint()}`;
    try {
      fs.writeFileSync(partial, js, { mode: 0o600 });
      fs.renameSync(partial, entry);
    } catch {
      fs.rmSync(partial, { force: true });
    }
    return js;
  }
}

/**
 * Registers the hook for FLUX's .ts files under `root` (a file: URL ending in /).
 * @param {string | null} dir
 * @param {string} [root]
 */
export function registerTsStripCache(dir, root = ROOT_URL) {
  return registerHooks({
    load(url, context, next) {
      if (!url.startsWith(root) || !url.endsWith('.ts') || url.includes('/node_modules/')) return next(url, context);
      const source = fs.readFileSync(fileURLToPath(url), 'utf8');
      return { format: 'module', source: strippedSource(source, dir), shortCircuit: true };
    },
  });
}

/** What the hook needs from Node and is missing (empty: all there). @returns {string[]} */
export function tsStripCacheShape() {
  const missing = [];
  if (typeof registerHooks !== 'function') missing.push('module.registerHooks');
  if (typeof stripTypeScriptTypes !== 'function') missing.push('module.stripTypeScriptTypes');
  else if (strip('const a: number = 1;') !== 'const a         = 1;') missing.push('stripTypeScriptTypes no longer keeps positions (mode: strip)');
  return missing;
}

/**
 * Strips every .ts file of FLUX (settings.ts, runtime/, nodes/) into `dir` ahead of the first start:
 * the Docker image does this at build time (docker/Dockerfile). Answers how many entries it wrote.
 * @param {string} dir
 * @param {string} [root]
 * @returns {number}
 */
export function warmTsStripCache(dir, root = ROOT_URL) {
  const { dir: usable, reason } = privateCacheDir(dir);
  if (usable === null) throw new Error(`${dir} cannot hold the cache: ${reason}`);
  const rootDir = fileURLToPath(root);
  const files = ['settings.ts', ...['runtime', 'nodes'].flatMap((d) => fs.readdirSync(path.join(rootDir, d), { recursive: true }).map((f) => path.join(d, String(f))))];
  let written = 0;
  for (const file of files.filter((f) => f.endsWith('.ts'))) {
    const source = fs.readFileSync(path.join(rootDir, file), 'utf8');
    if (fs.existsSync(path.join(usable, entryName(source)))) continue;
    strippedSource(source, usable);
    written++;
  }
  return written;
}

const folder = process.env.FLUX_TS_CACHE;
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // `FLUX_TS_CACHE=<dir> node runtime/patches/ts-strip-cache.js`: fill the folder now
  if (!folder) throw new Error('set FLUX_TS_CACHE to the folder to fill');
  process.stdout.write(`ts-strip-cache: ${warmTsStripCache(folder)} entries written to ${folder}\n`);
} else if (folder) {
  const { dir, reason } = privateCacheDir(folder);
  if (dir === null && isMainThread) process.emitWarning(`FLUX_TS_CACHE ${folder} is not used (${reason}): TypeScript is stripped at every start`);
  registerTsStripCache(dir);
}
