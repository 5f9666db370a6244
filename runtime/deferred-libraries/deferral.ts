/**
 * Defers the third-party libraries Node-RED's core nodes require when the palette loads (got,
 * cheerio, mqtt, …) until a node first uses one (docs/operations.md "Memory").
 *
 * FLUX loads the whole standard palette so that any imported flow works, but the default flow uses
 * none of these libraries, and together they hold megabytes of V8 heap. While the palette loads, a
 * module hook answers a core node's `require('cheerio')` (or `import('got')`) with a stand-in that
 * loads the real library on first use and forwards every operation to it. Only a library the node
 * does not touch while loading can be deferred; the caller's table says how each node uses each one.
 */
import { createRequire, registerHooks } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface DeferredLibrary {
  /** the module itself is called or constructed (`multer(…)`, `new FormData()`), not only read */
  callable?: boolean;
  /** exports the node reads while loading (`const { CookieJar } = require(…)`) and only calls or
   * constructs later: each gets a callable stand-in of its own */
  members?: string[];
  /** an ES module the node takes with `await import()`, of which it uses these exports, all
   * functions answering a promise (`got`): stood in by functions that import the library first */
  asyncFunctions?: string[];
}

export interface DeferringHooks {
  /** stops deferring: later requires get the real libraries (stand-ins handed out keep working) */
  deregister(): void;
}

/** What a generated stub module asks this module for; one Node-RED, so one table per process. */
const stubs = {
  /** real CommonJS file → its stand-in */
  standIns: new Map<string, object>(),
  /** real ES module URL → what its stub exports */
  esm: new Map<string, { name: string; exports: string[]; onLoad: (name: string) => void }>(),
};

/**
 * Starts deferring `libraries` (package name → how it is used) when a module under `requirerDir`
 * requires or imports them. `onLoad` is told when a deferred library is really loaded.
 */
export function deferLibraries(requirerDir: string, libraries: Record<string, DeferredLibrary>, onLoad: (name: string) => void = () => {}): DeferringHooks {
  const requirers = pathToFileURL(requirerDir).href + '/';
  const hooks = registerHooks({
    resolve(specifier, context, next) {
      const resolved = next(specifier, context);
      const lib = Object.hasOwn(libraries, specifier) ? libraries[specifier] : undefined;
      if (!lib || !context.parentURL?.startsWith(requirers) || !resolved.url.startsWith('file:')) return resolved;
      if (lib.asyncFunctions) {
        stubs.esm.set(resolved.url, { name: specifier, exports: lib.asyncFunctions, onLoad });
        return { url: resolved.url + STUB_ESM, format: 'module', shortCircuit: true };
      }
      const file = fileURLToPath(resolved.url);
      if (!stubs.standIns.has(file)) {
        const load = () => {
          const real = createRequire(file)(file) as object;
          onLoad(specifier);
          return real;
        };
        stubs.standIns.set(file, standIn(load, lib));
      }
      return { url: resolved.url + STUB_CJS, format: 'commonjs', shortCircuit: true };
    },
    load(url, context, next) {
      if (url.endsWith(STUB_CJS)) {
        const file = fileURLToPath(url.slice(0, -STUB_CJS.length));
        return { format: 'commonjs', shortCircuit: true, source: `module.exports = require(${JSON.stringify(THIS_FILE)}).standInFor(${JSON.stringify(file)});\n` };
      }
      if (url.endsWith(STUB_ESM)) {
        const real = url.slice(0, -STUB_ESM.length);
        const lines = stubs.esm.get(real)!.exports.map((e) => `export const ${e} = (...args) => loaded(${JSON.stringify(real)}).then((m) => m.${e}(...args));`);
        return { format: 'module', shortCircuit: true, source: [`import { loadEsm as loaded } from ${JSON.stringify(import.meta.url)};`, ...lines, ''].join('\n') };
      }
      return next(url, context);
    },
  });
  return { deregister: () => hooks.deregister() };
}

// Stub URLs: the real file's URL plus a suffix, so stack traces and the module cache name them.
const STUB_CJS = '.flux-deferred.cjs';
const STUB_ESM = '.flux-deferred.mjs';
const THIS_FILE = fileURLToPath(import.meta.url);

/** For the generated CommonJS stubs: the stand-in for a library's real file. */
export function standInFor(file: string): object {
  const s = stubs.standIns.get(file);
  if (!s) throw new Error(`no deferred library at ${file}`);
  return s;
}

/** For the generated ES module stubs: imports the real library (once; reported on the first time). */
export function loadEsm(url: string): Promise<Record<string, (...args: unknown[]) => unknown>> {
  const entry = stubs.esm.get(url)!;
  const first = !esmLoaded.has(url);
  esmLoaded.add(url);
  return import(url).then((m) => {
    if (first) entry.onLoad(entry.name);
    return m;
  });
}
const esmLoaded = new Set<string>();

/**
 * A proxy that loads the real module on the first operation on it and forwards every operation.
 * Its target is a bound function when the module is callable (a bound function has no own
 * `prototype`, so no proxy invariant ties answers to the target), a plain object otherwise.
 */
function standIn(load: () => object, lib: DeferredLibrary): object {
  let real: object | undefined;
  const get = () => (real ??= load());
  const members = new Map<PropertyKey, object>();
  for (const m of lib.members ?? []) members.set(m, standIn(() => Reflect.get(get(), m) as object, { callable: true }));
  const target = lib.callable ? function () {}.bind(null) : {};
  const proxy: object = new Proxy(target, {
    get: (_, key) => members.get(key) ?? Reflect.get(get(), key),
    set: (_, key, value) => Reflect.set(get(), key, value),
    has: (_, key) => Reflect.has(get(), key),
    ownKeys: () => Reflect.ownKeys(get()),
    // reported configurable: a proxy may not report a non-configurable property its target lacks
    getOwnPropertyDescriptor: (_, key) => {
      const d = Reflect.getOwnPropertyDescriptor(get(), key);
      return d && { ...d, configurable: true };
    },
    defineProperty: (_, key, desc) => Reflect.defineProperty(get(), key, desc),
    deleteProperty: (_, key) => Reflect.deleteProperty(get(), key),
    getPrototypeOf: () => Reflect.getPrototypeOf(get()),
    apply: (_, self, args) => Reflect.apply(get() as (...a: unknown[]) => unknown, self, args),
    construct: (_, args, newTarget) => {
      const cls = get() as new (...a: unknown[]) => object;
      return Reflect.construct(cls, args, newTarget === proxy ? cls : newTarget);
    },
  });
  return proxy;
}
