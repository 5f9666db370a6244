/**
 * Fenced patch: a module-loader hook (Node's `module.registerHooks`) that answers listed
 * `require(name)` / `import(name)` calls made from inside one directory with stand-ins that load the
 * real library on first use (docs/operations.md "Memory").
 *
 * FLUX loads code it rarely runs: Node-RED's whole core palette (got, cheerio, mqtt, … for flows a
 * user may import), umzug's command-line interface, Node-RED's JSONata engine. Each holds V8 heap
 * for the life of the process. Only a library the requirer does not use while loading can be
 * deferred, so each caller's table says how each one is used (runtime/flow-engine/node-red-libraries.ts,
 * runtime/app/startup-deferrals.ts). The hooks are registered only while the requirers load, then
 * deregistered. `moduleDeferralShape()` checks the loader API (test/patches/upstream-shape.test.ts);
 * test/patches/module-deferral.test.ts checks the stand-ins.
 *
 * How: while deferring, the hook answers a listed specifier with a generated stub module whose
 * exports are a stand-in: a proxy that loads the real library on its first use and forwards every
 * operation to it.
 */
import { createRequire, registerHooks } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface DeferredLibrary {
  /** the module itself is called or constructed (`multer(…)`, `new FormData()`), not only read */
  callable?: boolean;
  /** exports the requirer reads while loading (`const { CookieJar } = require(…)`) and only calls
   * or constructs later: each gets a callable stand-in of its own */
  members?: string[];
  /** the requirer enumerates the module's exports while loading (TypeScript's `__exportStar`): the
   * stand-in is a plain object with exactly these exports, each a callable stand-in */
  exports?: string[];
  /** the requirer constructs the module (`new Ajv()`) while loading and calls only these methods
   * on the instance until it is used: `new` answers a stand-in instance that records those calls
   * and replays them on the real instance, built on its first other use */
  recordedCalls?: string[];
  /** an ES module the requirer takes with `await import()`, of which it uses these exports, all
   * functions answering a promise (`got`): stood in by functions that import the library first */
  asyncFunctions?: string[];
}

export interface DeferringHooks {
  /** stops deferring: later requires get the real libraries (stand-ins handed out keep working) */
  deregister(): void;
}

/** What the generated stubs fetch from this module; module hooks are per process, so is this. */
const stubs = {
  /** real CommonJS file → its stand-in */
  standIns: new Map<string, object>(),
  /** real ES module URL → what its stub exports, and whom to tell when it loads */
  esm: new Map<string, { name: string; exports: string[]; onLoad: (name: string) => void; loaded: boolean }>(),
};

// Stub URLs: the real file's URL plus a suffix, so that stack traces and the module cache name them.
const STUB_CJS = '.flux-deferred.cjs';
const STUB_ESM = '.flux-deferred.mjs';
const THIS_FILE = fileURLToPath(import.meta.url);

export function deferLibraries(requirerDir: string, libraries: Record<string, DeferredLibrary>, onLoad: (name: string) => void = () => {}): DeferringHooks {
  const requirers = pathToFileURL(requirerDir).href + '/';
  const hooks = registerHooks({
    resolve(specifier, context, next) {
      const resolved = next(specifier, context);
      const lib = Object.hasOwn(libraries, specifier) ? libraries[specifier] : undefined;
      if (!lib || !context.parentURL?.startsWith(requirers) || !resolved.url.startsWith('file:')) return resolved;
      if (lib.asyncFunctions) {
        if (!stubs.esm.has(resolved.url)) stubs.esm.set(resolved.url, { name: specifier, exports: lib.asyncFunctions, onLoad, loaded: false });
        return { url: resolved.url + STUB_ESM, format: 'module', shortCircuit: true };
      }
      const file = fileURLToPath(resolved.url);
      if (!stubs.standIns.has(file)) {
        const load = () => {
          const real = createRequire(file)(file) as object;
          onLoad(specifier);
          return real;
        };
        stubs.standIns.set(file, lib.exports ? exportsStandIn(once(load), lib.exports) : standIn(once(load), lib));
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
        const lines = stubs.esm.get(real)!.exports.map((e) => `export const ${e} = (...args) => load(${JSON.stringify(real)}).then((m) => m.${e}(...args));`);
        return { format: 'module', shortCircuit: true, source: [`import { loadEsm as load } from ${JSON.stringify(import.meta.url)};`, ...lines, ''].join('\n') };
      }
      return next(url, context);
    },
  });
  return { deregister: () => hooks.deregister() };
}

/** For the generated CommonJS stubs: the stand-in for a library's real file. */
export function standInFor(file: string): object {
  const s = stubs.standIns.get(file);
  if (!s) throw new Error(`no deferred library at ${file}`);
  return s;
}

/** For the generated ES module stubs: imports the real library. */
export async function loadEsm(url: string): Promise<Record<string, (...args: unknown[]) => unknown>> {
  const entry = stubs.esm.get(url)!;
  const m = await import(url);
  if (!entry.loaded) {
    entry.loaded = true;
    entry.onLoad(entry.name);
  }
  return m;
}

function once<T>(load: () => T): () => T {
  let value: T | undefined;
  let done = false;
  return () => {
    if (!done) {
      value = load();
      done = true;
    }
    return value!;
  };
}

/**
 * A proxy that loads the real module on the first operation on it and forwards every operation.
 * Its target is a bound function when the module is callable (a bound function has no own
 * `prototype`, so no proxy invariant ties the answers to the target), a plain object otherwise.
 */
function standIn(real: () => object, lib: DeferredLibrary): object {
  const members = new Map<PropertyKey, object>();
  for (const m of lib.members ?? []) members.set(m, standIn(once(() => Reflect.get(real(), m) as object), { callable: true }));
  const target = lib.callable || lib.recordedCalls ? function () {}.bind(null) : {};
  const proxy: object = new Proxy(target, {
    ...forwarding(real),
    get: (_, key) => members.get(key) ?? Reflect.get(real(), key),
    construct: (_, args, newTarget) => {
      if (lib.recordedCalls && newTarget === proxy) return recordingInstance(real as () => new (...a: unknown[]) => object, args, lib.recordedCalls);
      const cls = real() as new (...a: unknown[]) => object;
      return Reflect.construct(cls, args, newTarget === proxy ? cls : newTarget);
    },
  });
  return proxy;
}

/** A plain object with exactly `names`, each a callable stand-in for that export of the real module. */
function exportsStandIn(real: () => object, names: string[]): object {
  const out: Record<string, object> = {};
  for (const n of names) out[n] = standIn(once(() => Reflect.get(real(), n) as object), { callable: true });
  return out;
}

/**
 * A stand-in instance of `cls()`: calls to `recorded` methods are kept (each answers the stand-in,
 * as a chaining method would); the first other operation builds the real instance, replays them in
 * order and from then on forwards, with methods bound to the real instance (so that they never see
 * the proxy as `this`).
 */
function recordingInstance(cls: () => new (...a: unknown[]) => object, args: unknown[], recorded: string[]): object {
  const calls: [string, unknown[]][] = [];
  let instance: object | undefined;
  const real = () => {
    if (!instance) {
      instance = Reflect.construct(cls(), args);
      for (const [method, callArgs] of calls) Reflect.apply(Reflect.get(instance, method) as (...a: unknown[]) => unknown, instance, callArgs);
      calls.length = 0;
    }
    return instance;
  };
  const proxy: object = new Proxy(
    {},
    {
      ...forwarding(real),
      get: (_, key) => {
        if (!instance && typeof key === 'string' && recorded.includes(key)) {
          return (...callArgs: unknown[]) => {
            calls.push([key, callArgs]);
            return proxy;
          };
        }
        const v = Reflect.get(real(), key);
        return typeof v === 'function' ? v.bind(real()) : v;
      },
    },
  );
  return proxy;
}

/** Proxy traps forwarding every operation but `get` and `construct` to `real()`. */
function forwarding(real: () => object): ProxyHandler<object> {
  return {
    set: (_, key, value) => Reflect.set(real(), key, value),
    has: (_, key) => Reflect.has(real(), key),
    ownKeys: () => Reflect.ownKeys(real()),
    // reported configurable: a proxy may not report a non-configurable property its target lacks
    getOwnPropertyDescriptor: (_, key) => {
      const d = Reflect.getOwnPropertyDescriptor(real(), key);
      return d && { ...d, configurable: true };
    },
    defineProperty: (_, key, desc) => Reflect.defineProperty(real(), key, desc),
    deleteProperty: (_, key) => Reflect.deleteProperty(real(), key),
    getPrototypeOf: () => Reflect.getPrototypeOf(real()),
    apply: (_, self, args) => Reflect.apply(real() as (...a: unknown[]) => unknown, self, args),
  };
}

/** What the hook needs and this Node does not offer (empty: all there). */
export function moduleDeferralShape(): string[] {
  return typeof registerHooks === 'function' ? [] : ['node:module has no registerHooks (Node >= 22.15 / 23.5)'];
}
