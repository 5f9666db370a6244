/**
 * Fenced patch: a module-loader hook (Node's `module.registerHooks`) that hands mqtt-packet's parser
 * and writer a logger that does nothing when their `debug` namespace is off.
 *
 * Why: parser.js calls its `debug` logger up to 46 times per packet (writeToStream.js 12). A logger of
 * the `debug` package that is off still gathers its arguments into an array on every call (its
 * loggers are `function debug(...args)`): at 15k msg/s that was the largest
 * single allocation site of FLUX's main thread, 8 % of all it allocated, and each scavenge it brings
 * on copies the messages in flight (docs/benchmarks.md "Session 9").
 *
 * What stays: with `DEBUG=mqtt-packet:*` (read when mqtt-packet loads) the loggers are the real ones.
 * Turning them on later through `debug.enable()` no longer reaches mqtt-packet: restart with DEBUG set.
 * runtime/cli.ts registers the hook while FLUX's modules load; `mqttPacketDebugShape()` checks that
 * mqtt-packet still makes its loggers as `require('debug')('mqtt-packet:…')`
 * (test/patches/upstream-shape.test.ts); test/patches/mqtt-packet-debug.test.ts checks the hook.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire, registerHooks } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const aedesRequire = createRequire(import.meta.resolve('aedes'));
/** mqtt-packet's folder, as aedes resolves it */
const MQTT_PACKET_DIR = path.dirname(aedesRequire.resolve('mqtt-packet'));
const LOGGER_FILES = ['parser.js', 'writeToStream.js'];
const STUB = '.flux-quiet.cjs';
const THIS_FILE = fileURLToPath(import.meta.url);

type CreateDebug = ((namespace: string) => ((...args: unknown[]) => void) & { enabled: boolean }) & { enabled(namespace: string): boolean };

/** Loggers handed to mqtt-packet through the hook (module hooks are per process, so is this). */
let loggersMade = 0;

/** For the generated stub: `require('debug')` as mqtt-packet sees it. */
export function quietLoggers(createDebug: CreateDebug): (namespace: string) => unknown {
  return (namespace) => {
    loggersMade++;
    if (createDebug.enabled(namespace)) return createDebug(namespace);
    const off = () => {};
    return Object.assign(off, { enabled: false, namespace });
  };
}

/**
 * Registers the hook: `require('debug')` from inside mqtt-packet answers `quietLoggers(debug)`.
 * Deregister once mqtt-packet has loaded (loggers made by then stay quiet); `deregister` answers how
 * many loggers mqtt-packet got through the hook: 0 means it was loaded before the hook was.
 */
export function quietMqttPacketDebug(): { deregister(): number } {
  const inside = pathToFileURL(MQTT_PACKET_DIR).href + '/';
  const hooks = registerHooks({
    resolve(specifier, context, next) {
      const resolved = next(specifier, context);
      if (specifier !== 'debug' || !context.parentURL?.startsWith(inside) || !resolved.url.startsWith('file:')) return resolved;
      return { url: resolved.url + STUB, format: 'commonjs', shortCircuit: true };
    },
    load(url, context, next) {
      if (!url.endsWith(STUB)) return next(url, context);
      const real = fileURLToPath(url.slice(0, -STUB.length));
      return { format: 'commonjs', shortCircuit: true, source: `module.exports = require(${JSON.stringify(THIS_FILE)}).quietLoggers(require(${JSON.stringify(real)}));\n` };
    },
  });
  return {
    deregister: () => {
      hooks.deregister();
      return loggersMade;
    },
  };
}

/** What the hook needs and the installed mqtt-packet / debug / Node do not offer (empty: all there). */
export function mqttPacketDebugShape(): string[] {
  const missing: string[] = [];
  if (typeof registerHooks !== 'function') missing.push("node:module has no registerHooks");
  for (const f of LOGGER_FILES) {
    const text = fs.readFileSync(path.join(MQTT_PACKET_DIR, f), 'utf8');
    if (!/require\('debug'\)\('mqtt-packet:/.test(text)) missing.push(`mqtt-packet/${f} no longer makes its logger as require('debug')('mqtt-packet:…')`);
  }
  const createDebug = createRequire(path.join(MQTT_PACKET_DIR, 'parser.js'))('debug') as unknown;
  if (typeof createDebug !== 'function' || typeof (createDebug as { enabled?: unknown }).enabled !== 'function') missing.push("the debug package mqtt-packet requires no longer exports a function with enabled(namespace)");
  return missing;
}
