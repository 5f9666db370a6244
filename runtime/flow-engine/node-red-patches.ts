/**
 * Node-RED internals FLUX changes for the message path (node-red is pinned exactly for this, as
 * aedes is; docs/operations.md). Each change keeps Node-RED's behaviour and only skips work whose
 * result is thrown away.
 */
import { createRequire } from 'node:module';

type Metric = (this: unknown, eventname?: string, msg?: unknown, value?: unknown) => unknown;

const nodeRedRequire = createRequire(import.meta.resolve('node-red'));

let applied = false;

export function applyNodeRedPatches(): void {
  if (applied) return;
  applied = true;
  const Node = nodeRedRequire('@node-red/runtime/lib/nodes/Node.js') as { prototype: { metric: Metric } };
  const log = (nodeRedRequire('@node-red/util') as { log: { metric(): boolean } }).log;
  // Node.metric() runs three times per node per message (receive, send, done) and each time builds
  // a record, a string and a log event that every handler then drops unless metrics logging is on
  // (settings.ts keeps it off): 6% of what the message path allocated at 10k msg/s.
  const metric = Node.prototype.metric;
  Node.prototype.metric = function (this: unknown, eventname?: string, msg?: unknown, value?: unknown) {
    if (eventname !== undefined && !log.metric()) return undefined;
    return metric.call(this, eventname, msg, value);
  };
}
