/**
 * Where a `flux rule` node shows its scripts' `print` / `log_info` / `log_warn` lines: in the editor's
 * debug sidebar, as a `debug` node would show a message (attributed to the rule node, the rule's name
 * as topic), and `log_warn` as the node's warning (sidebar and server log). A script printing on every
 * message at 30k msg/s must not flood the editor: at most LINES_PER_SECOND lines a second per node,
 * then one line saying how many were left out. Every line also stays on `msg.logs` of the outputs.
 */
import type { Node, NodeAPI } from './red.ts';
import type { RuleRun } from '../runtime/rules/index.ts';

export const LINES_PER_SECOND = 20;

type Logs = NonNullable<RuleRun['outcome']['logs']>;

export interface RuleLogSink {
  show(rule: string, logs: Logs | null | undefined): void;
}

export function ruleLogSink(RED: NodeAPI, node: Node, perSecond = LINES_PER_SECOND): RuleLogSink {
  let windowStart = 0;
  let shown = 0;
  let left = 0;
  const withFlow = node as Node & { z?: string; _alias?: string; _flow?: { path?: string } };
  const publish = (topic: string, text: string) => {
    const msg = { id: node.id, z: withFlow.z, _alias: withFlow._alias, path: withFlow._flow?.path, name: node.name, topic, msg: text };
    RED.comms?.publish('debug', RED.util.encodeObject ? RED.util.encodeObject(msg, { maxLength: 1000 }) : msg);
  };
  const roll = (now: number) => {
    if (now - windowStart < 1000) return;
    if (left > 0) publish('flux rule', `… ${left} log line${left === 1 ? '' : 's'} not shown (at most ${perSecond} a second)`);
    windowStart = now;
    shown = 0;
    left = 0;
  };
  return {
    show(rule, logs) {
      if (!logs?.length) return;
      roll(Date.now());
      for (const l of logs) {
        if (shown >= perSecond) {
          left++;
          continue;
        }
        shown++;
        if (l.level === 'warn') node.warn(`${rule}: ${l.message}`);
        else publish(rule, l.level === 'print' ? l.message : `[info] ${l.message}`);
      }
    },
  };
}
