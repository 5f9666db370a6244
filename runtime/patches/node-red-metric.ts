/**
 * Fenced patch: Node-RED's `Node.prototype.metric` (@node-red/runtime/lib/nodes/Node.js; node-red is
 * pinned exactly). It runs three times per node per message (receive, send, done) and each time
 * builds a record, a string and a log event that every handler drops unless metrics logging is on
 * (settings.ts keeps it off): 6% of what the message path allocated at 10k msg/s. Patched, it
 * returns at once while metrics logging is off, and behaves as before when it is on.
 * `nodeRedMetricShape()` checks the shape (test/patches/upstream-shape.test.ts).
 */
import { createRequire } from 'node:module';

type Metric = (this: unknown, eventname?: string, msg?: unknown, value?: unknown) => unknown;
type NodeClass = { prototype: { metric: Metric & { fluxPatched?: boolean } } };

const nodeRedRequire = createRequire(import.meta.resolve('node-red'));
const loadNode = () => nodeRedRequire('@node-red/runtime/lib/nodes/Node.js') as NodeClass;
const loadLog = () => (nodeRedRequire('@node-red/util') as { log: { metric?: () => boolean } }).log;

/** Applies the patch once per process; answers false when Node-RED's shape differs. */
export function patchNodeRedMetric(): boolean {
  const Node = loadNode();
  const log = loadLog();
  const metric = Node.prototype.metric;
  if (typeof metric !== 'function' || typeof log.metric !== 'function') return false;
  if (metric.fluxPatched) return true;
  const isOn = log.metric.bind(log);
  const patched: Metric & { fluxPatched?: boolean } = function (this: unknown, eventname?: string, msg?: unknown, value?: unknown) {
    if (eventname !== undefined && !isOn()) return undefined;
    return metric.call(this, eventname, msg, value);
  };
  patched.fluxPatched = true;
  Node.prototype.metric = patched;
  return true;
}

/** What the patch needs and the installed Node-RED does not offer (empty: all there). */
export function nodeRedMetricShape(): string[] {
  const missing: string[] = [];
  if (typeof loadNode().prototype.metric !== 'function') missing.push('Node.prototype.metric is not a function');
  if (typeof loadLog().metric !== 'function') missing.push("@node-red/util's log.metric is not a function");
  return missing;
}
