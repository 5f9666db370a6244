/**
 * Uplinks cross Node-RED in batches between FLUX nodes, one message per uplink everywhere else
 * (docs/architecture.md "Batches through Node-RED").
 *
 * `flux device in` sends one message per event-loop turn carrying that turn's uplinks as items,
 * each item the message a user's node would see for that uplink (its `_msgid` is the uplink id).
 * `flux decode`, `flux rule` and `flux store` take such a message whole and answer one per output.
 * Node-RED's routing, its `setImmediate` per delivery and its hooks then run once per turn and
 * node, not once per uplink. Any other destination (a `function`, a `debug`, a `flux command`…) gets
 * the items one by one, delivered by the pipeline tracker's `preDeliver` hook (pipeline.ts), so a
 * user's node sees exactly the messages the nodes' help texts describe.
 */

/** The property a batch message carries its items in. */
export const BATCH_KEY = '_flux_batch';

/** The node types that take a batch message whole; every other destination gets its items one by one. */
export const BATCH_NODE_TYPES: ReadonlySet<string> = new Set(['flux decode', 'flux rule', 'flux store']);

export interface BatchItem {
  _msgid?: string;
  [k: string]: unknown;
}

/** The items of a batch message, or undefined for an ordinary message. */
export function batchItems(msg: unknown): BatchItem[] | undefined {
  const items = (msg as Record<string, unknown> | null | undefined)?.[BATCH_KEY];
  return Array.isArray(items) ? (items as BatchItem[]) : undefined;
}

/** A batch message of `items` with its own message id. */
export function batchMessage(items: BatchItem[], id: string): { _msgid: string; [BATCH_KEY]: BatchItem[] } {
  return { _msgid: id, [BATCH_KEY]: items };
}
