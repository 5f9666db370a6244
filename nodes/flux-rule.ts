/**
 * `flux rule`: runs an inline script (edited in the node dialog) or every enabled registry rule
 * matching the message (docs/architecture.md "The uplink path"). Outputs: 1 triggered (one message per rule that returned
 * true, with `msg.rule`), 2 not triggered (the message, when no rule returned true), 3 errors.
 */
import type { NodeAPI, Node, NodeDef, NodeStatus, NodeMessage } from './red.ts';
import { eachUplink, type ItemOutput } from './batch.ts';
import { countedText, fluxOf, statusThrottle } from './red.ts';
import { registerRuleAdmin } from './flux-rule-admin.ts';
import { ruleLogSink } from './rule-logs.ts';
import type { RuleEngine, RuleInput, RuleRun } from '../runtime/rules/index.ts';

interface RuleDef extends NodeDef {
  /** 'registry' (default) or 'inline' */
  mode?: string;
  script?: string;
  /** JSON object: the inline script's `env` */
  env?: string;
  /** false: the scripts' print/log lines stay on msg.logs only, not in the debug sidebar (default true) */
  sidebar?: boolean;
}

/** The message's StandardMessage(s): decoded payloads, or the raw `{ "values": … }` JSON of a product without plugin. */
export function standardMessages(msg: NodeMessage): RuleInput['message'][] {
  let p: unknown = msg.payload;
  if (Buffer.isBuffer(p) || p instanceof Uint8Array) p = Buffer.from(p).toString('utf8');
  if (typeof p === 'string') {
    try {
      p = JSON.parse(p);
    } catch {
      throw new Error('msg.payload is neither a StandardMessage nor JSON');
    }
  }
  const list = Array.isArray(p) ? p : [p];
  const device = msg.device as { id?: string } | undefined;
  return list.map((m) => {
    if (!m || typeof m !== 'object' || typeof (m as { values?: unknown }).values !== 'object') throw new Error('msg.payload must be a StandardMessage { device_id, values, ts? }');
    const s = m as { device_id?: string; values: Record<string, unknown>; ts?: number; event_id?: unknown };
    const deviceId = s.device_id ?? device?.id;
    if (!deviceId) throw new Error('msg.payload has no device_id and msg.device.id is missing');
    return typeof s.event_id === 'string' ? { device_id: deviceId, values: s.values, ts: s.ts, event_id: s.event_id } : { device_id: deviceId, values: s.values, ts: s.ts };
  });
}

export default function register(RED: NodeAPI): void {
  registerRuleAdmin(RED);
  function FluxRule(this: Node, def: RuleDef): void {
    RED.nodes.createNode(this, def);
    const flux = fluxOf(RED);
    const node = this;
    const mode = def.mode === 'inline' ? 'inline' : 'registry';
    const counts = { in: 0, hit: 0, err: 0 };
    let inline: ReturnType<RuleEngine['inline']> | undefined;
    let setupError: string | undefined;
    /** inline mode: settles once the script host is loaded and the script compiled; messages wait for it, in order */
    let ready: Promise<void> | undefined;
    let closed = false;

    const rules = (): RuleEngine => flux.rules;
    const failSetup = (err: unknown) => {
      setupError = (err as Error).message;
      node.error(`flux rule: ${setupError}`);
      node.status({ fill: 'red', shape: 'ring', text: 'flux-rule.status.script-error' });
    };
    if (mode === 'inline') {
      try {
        const env = def.env?.trim() ? JSON.parse(def.env) : {};
        const engine = rules();
        // QuickJS is loaded on first need (runtime/rules): the script compiles once it is there.
        ready = engine
          .loadScripts()
          .then(() => {
            if (closed) return;
            inline = engine.inline(def.script ?? '', { name: def.name || `node ${node.id}`, env });
          })
          .catch(failSetup)
          .finally(() => {
            ready = undefined;
          });
      } catch (err) {
        failSetup(err);
      }
    }
    const status = statusThrottle(node);
    const logSink = def.sidebar === false ? undefined : ruleLogSink(RED, node);
    const shown = (): NodeStatus => ({
      fill: counts.err ? 'yellow' : 'green',
      shape: 'dot',
      text: counts.err ? countedText(RED, 'flux-rule.status.triggered-errors', { hit: counts.hit, in: counts.in, count: counts.err }) : countedText(RED, 'flux-rule.status.triggered', { hit: counts.hit, count: counts.in }),
    });
    if (!setupError) node.status({ fill: 'grey', shape: 'ring', text: `flux-rule.status.${mode}` });

    const generateId = () => RED.util.generateId();
    node.on('input', (msg, send, done) => {
      if (ready) void ready.then(() => eachUplink(flux, node, generateId, 3, msg, send, done, handleItem));
      else eachUplink(flux, node, generateId, 3, msg, send, done, handleItem);
    });

    /**
     * Rules run in the script workers: an uplink's outputs are emitted once every run of it answered
     * (1 triggered, one message per rule; 2 the uplink when none triggered; 3 errors).
     */
    function handleItem(msg: NodeMessage, out: ItemOutput): void {
      const errors: NodeMessage[] = [];
      const bad = (err: unknown) => {
        errors.push({ ...msg, error: { code: 'bad_message', message: (err as Error).message, source: { id: node.id, type: 'flux rule' } } });
        settle(null, []);
      };
      // called by the rule engine's callback: a throw here must not reach the script pool's answer loop
      const settleOne = (messages: RuleInput['message'][], runs: RuleRun[]) => {
        try {
          settle(messages, [runs]);
        } catch (err) {
          node.error(err, msg);
        }
      };
      const settle = (messages: RuleInput['message'][] | null, answered: RuleRun[][]) => {
        let hits = 0;
        if (messages)
          for (let i = 0; i < messages.length; i++) {
            const message = messages[i]!;
            for (const r of answered[i]!) {
              const o = r.outcome;
              logSink?.show(r.rule.name, o.logs);
              if (!o.ok) errors.push({ ...msg, rule: r.rule, error: { ...o.error, rule: r.rule.name, source: { id: node.id, type: 'flux rule' } }, logs: o.logs ?? [] });
              else if (r.triggered) {
                out.emit(0, { ...msg, payload: message, rule: r.rule, result: o.result, logs: o.logs ?? [] });
                hits++;
              }
            }
          }
        if (hits === 0 && messages) out.emit(1, msg);
        for (const e of errors) out.emit(2, e);
        counts.in++;
        if (hits) counts.hit++;
        counts.err += errors.length;
        status.update(shown);
        out.end();
      };
      try {
        if (setupError) throw new Error(setupError);
        const device = msg.device as RuleInput['device'];
        const messages = standardMessages(msg);
        if (inline) {
          const run = inline;
          Promise.all(messages.map((message) => run.run({ message, device, msgId: msg._msgid }).then((r) => [r]))).then((answered) => settle(messages, answered), bad);
        } else {
          const engine = rules();
          // one StandardMessage per uplink is the common case: no Promise.all for it
          if (messages.length === 1) engine.evaluateEach({ message: messages[0]!, device, msgId: msg._msgid }, (runs) => settleOne(messages, runs));
          else Promise.all(messages.map((message) => engine.evaluate({ message, device, msgId: msg._msgid }))).then((answered) => settle(messages, answered), bad);
        }
      } catch (err) {
        bad(err);
      }
    }
    node.on('close', (_removed, done) => {
      closed = true;
      status.close();
      inline?.dispose();
      done();
    });
  }
  RED.nodes.registerType('flux rule', FluxRule);
}
