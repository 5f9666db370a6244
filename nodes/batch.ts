/**
 * How `flux decode`, `flux rule` and `flux store` take their input: a batch message's uplinks
 * (runtime/flow-engine batch.ts) or one ordinary message, handled item by item, answered once
 * every item settled.
 */
import type { Node, NodeMessage, Send, Done } from './red.ts';
import { batchItems, batchMessage } from '../runtime/flow-engine/index.ts';
import type { FluxNodeHandle } from '../runtime/flow-engine/index.ts';

/** What an item's handler answers with; it calls `end()` once, after its emits and fails. */
export interface ItemOutput {
  /** sends `m` on output `port` (0-based) */
  emit(port: number, m: NodeMessage): void;
  /**
   * The item failed and goes no further: in a batch its error reaches the flow's catch nodes with
   * `m` and the uplink finishes as failed; an ordinary message ends with done(err).
   */
  fail(err: Error, m: NodeMessage): void;
  end(): void;
}

export type ItemHandler = (item: NodeMessage, out: ItemOutput) => void;

/**
 * Runs `handle` over the uplinks of `msg` and answers on `ports` outputs: a batch input gets one
 * batch message per output that has items, an ordinary message its outputs as before batching.
 */
export function eachUplink(flux: FluxNodeHandle, node: Node, generateId: () => string, ports: number, msg: NodeMessage, send: Send, done: Done, handle: ItemHandler): void {
  const items = batchItems(msg) as NodeMessage[] | undefined;
  const outs: NodeMessage[][] = Array.from({ length: ports }, () => []);
  let open = items ? items.length : 1;
  let failure: Error | undefined;
  const finish = () => {
    if (items) {
      const answer = outs.map((o) => (o.length ? (batchMessage(o, generateId()) as NodeMessage) : null));
      if (answer.some((a) => a !== null)) send(answer);
      done();
      return;
    }
    const answer = outs.map((o) => (o.length === 0 ? null : o.length === 1 ? o[0]! : o));
    if (answer.some((a) => a !== null)) send(answer);
    done(failure);
  };
  const output: ItemOutput = {
    emit: (port, m) => void outs[port]!.push(m),
    fail: items
      ? (err, m) => {
          node.error(err, m);
          if (m._msgid) flux.pipeline.fail(m._msgid);
        }
      : (err) => {
          failure ??= err;
        },
    end: () => {
      if (--open === 0) finish();
    },
  };
  if (!items) return handle(msg, output);
  if (items.length === 0) return finish();
  for (const item of items) handle(item, output);
}
