/** The slice of Node-RED's node API our nodes use (node-red ships no types), and how a node reaches FLUX. */
import type { FluxNodeHandle } from '../runtime/flow-engine/index.ts';

export interface NodeMessage {
  _msgid?: string;
  payload?: unknown;
  topic?: string;
  [k: string]: unknown;
}

export type Send = (msg: NodeMessage | (NodeMessage | NodeMessage[] | null)[] | null) => void;
export type Done = (err?: Error) => void;

export interface NodeStatus {
  fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape?: 'ring' | 'dot';
  text?: string;
}

export interface Node {
  id: string;
  type: string;
  name?: string;
  on(event: 'input', handler: (msg: NodeMessage, send: Send, done: Done) => void | Promise<void>): void;
  on(event: 'close', handler: (removed: boolean, done: () => void) => void): void;
  send: Send;
  status(s: NodeStatus): void;
  error(err: unknown, msg?: NodeMessage): void;
  warn(msg: unknown): void;
  log(msg: unknown): void;
}

export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  [k: string]: unknown;
}

export interface NodeAPI {
  nodes: {
    createNode(node: Node, def: NodeDef): void;
    registerType(type: string, ctor: (this: Node, def: NodeDef) => void, opts?: Record<string, unknown>): void;
    getNode(id: string): unknown;
  };
  settings: Record<string, unknown> & { flux?: FluxNodeHandle };
  httpAdmin: { get(path: string, ...handlers: unknown[]): void; post(path: string, ...handlers: unknown[]): void; put(path: string, ...handlers: unknown[]): void };
  auth: { needsPermission(permission: string): unknown };
  util: { generateId(): string; encodeObject?(msg: Record<string, unknown>, opts?: { maxLength?: number }): Record<string, unknown> };
  /** the editor's comms socket: `debug` messages appear in the debug sidebar */
  comms?: { publish(topic: string, data: unknown, retain?: boolean): void };
  /** Node-RED's message catalog of this node module (nodes/locales/<lang>/<node>.json), in the runtime's language */
  _?(key: string, vars?: Record<string, unknown>): string;
}

/**
 * A status text with numbers in it, in the runtime's language. Fixed status texts are sent as bare
 * catalog keys instead ("flux-rule.status.script-error"): the editor translates those into the
 * browser's language, but it cannot fill in numbers, so counted texts are translated here.
 */
export function countedText(RED: NodeAPI, key: string, vars: Record<string, unknown>): string {
  const text = RED._?.(key, vars);
  return text && text !== key && !text.endsWith(`:${key}`) ? text : `${key} ${JSON.stringify(vars)}`;
}

/** The FLUX runtime the node runs in (its typed handle); a node loaded outside FLUX fails with a clear message. */
export function fluxOf(RED: NodeAPI): FluxNodeHandle {
  const ctx = RED.settings.flux;
  if (!ctx) throw new Error('FLUX nodes run only inside the FLUX runtime (RED.settings.flux is missing)');
  return ctx;
}

/** How often a node's status may change: often enough to watch counts move, rarely enough to cost nothing at 30k msg/s. */
export const STATUS_EVERY_MS = 500;

export interface StatusThrottle {
  /** Shows `make()` now if the last status is older than the interval, else once when it ends, with the newest state. */
  update(make: () => NodeStatus): void;
  /** Drops a pending update (on the node's close). */
  close(): void;
}

/**
 * A node status at a bounded rate whose last update is always shown, so counts end true: an update
 * inside the interval is held, and replaced by newer ones, until the interval ends.
 */
export function statusThrottle(node: Pick<Node, 'status'>, everyMs = STATUS_EVERY_MS): StatusThrottle {
  let last = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  let newest: (() => NodeStatus) | undefined;
  const show = () => {
    timer = undefined;
    last = Date.now();
    const make = newest;
    newest = undefined;
    if (make) node.status(make());
  };
  return {
    update(make) {
      newest = make;
      if (timer) return;
      const wait = last + everyMs - Date.now();
      if (wait <= 0) show();
      else timer = setTimeout(show, wait);
    },
    close() {
      clearTimeout(timer);
      timer = undefined;
      newest = undefined;
    },
  };
}
