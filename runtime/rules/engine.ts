/** Runs compiled rules on a message and carries out what they ask: script commands and alarms, then the rule's action. */
import type { FluxContext } from '../app/context.ts';
import type { Logger } from '../log/index.ts';
import type { AlarmCenter } from '../alarms/index.ts';
import type { PooledScript, RunOutcome, ScriptMessage, CommandRequest, AlarmRequest } from '../scripts/index.ts';
import { RuleStats } from './stats.ts';
import { RateLimit, commandSender, fillTemplate, postWebhook, type CommandSender } from './actions.ts';
import type { Rule, WebhookAction, CommandAction, AlarmAction } from './schema.ts';

/** A decoded message as the flow carries it: msg.payload (StandardMessage) plus msg.device. */
export interface RuleInput {
  /** `event_id` set: a device event, `values` its payload */
  message: { device_id: string; values: Record<string, unknown>; ts?: number; event_id?: string };
  device?: { id: string; product_id?: string; product_key?: string };
  /** the uplink's trace id (`msg._msgid`), for the per-message trace */
  msgId?: string;
}

export interface RuleRun {
  rule: { id: string | null; name: string; action_type: string; version: number };
  /** the script returned true */
  triggered: boolean;
  outcome: RunOutcome;
}

export interface LoadedRule {
  rule: Rule;
  /** undefined when the stored script does not compile (then `compileError` says why) */
  script?: PooledScript;
  compileError?: string;
  /** a disabled rule read at start before the script host was needed: compiled when it is created */
  deferred?: boolean;
  stats: RuleStats;
  limiter: RateLimit;
  /** runs in a row that hit a limit (time, memory, stack) */
  limitHits: number;
  /** set once `limitHits` reaches QUARANTINE_AFTER: the rule is skipped until it is saved again */
  quarantine?: { reason: string; at: string };
}

/** Runs in a row that hit a limit before a rule is quarantined. */
export const QUARANTINE_AFTER = 3;
const LIMIT_CODES = new Set(['script_timeout', 'script_memory', 'script_stack', 'script_quarantined']);

export interface RuleRunner {
  /**
   * Runs `lr` on `input` in the script workers and then carries out what it asked, on this thread;
   * never rejects. `sm`: the script message, shared by the rules of one message.
   */
  run(lr: LoadedRule, input: RuleInput, sm?: ScriptMessage): Promise<RuleRun>;
  /**
   * `run` without a Promise: `done` is called once, with the run (the `flux rule` node's path, one
   * call per uplink and rule; a Promise chain per run was a fifth of what the node allocated).
   */
  submit(lr: LoadedRule, input: RuleInput, sm: ScriptMessage, done: (run: RuleRun) => void): void;
  /** Runs those of `rules` that are enabled, not quarantined and match the message's device and product; `done` once, with the runs in their order. */
  runMatching(rules: readonly LoadedRule[], input: RuleInput, done: (runs: RuleRun[]) => void): void;
  /** Rejects what is still pending (webhook retries) on stop. */
  stop(): void;
}

function failedRun(lr: LoadedRule, outcome: RunOutcome): RuleRun {
  const rule = lr.rule;
  return { rule: { id: rule.id || null, name: rule.name, action_type: rule.action_type, version: rule.version }, triggered: false, outcome };
}

/** A command the downlink could not hand to the device counts as a failed action ('queued' is fine: a persistent session gets it). */
async function delivered(p: Promise<{ status: string; reason?: unknown }>): Promise<void> {
  const r = await p;
  if (r.status === 'offline') throw new Error(`device offline${r.reason ? `: ${String(r.reason)}` : ''}`);
}

export function toScriptMessage(input: RuleInput): ScriptMessage {
  const m = input.message;
  // A device event reaches scripts as msg.event_id and msg.event (its payload), with empty values,
  // so a rule on telemetry values never fires on an event's fields.
  if (m.event_id !== undefined) return { device_id: m.device_id, values: {}, event_id: m.event_id, event: m.values ?? {}, ts: m.ts ?? Date.now(), product: input.device?.product_key };
  return { device_id: m.device_id, values: m.values ?? {}, ts: m.ts ?? Date.now(), product: input.device?.product_key };
}

/** `onQuarantine`: a rule was just quarantined (the engine records it in the registry). */
/** What triggered rules act through: the alarm center and the downlink (either may be absent in a partial process). */
export interface RuleActionTargets {
  alarms?: AlarmCenter;
  downlink?: CommandSender;
}

export function createRuleRunner(ctx: FluxContext, log: Logger, targets: RuleActionTargets, onQuarantine: (lr: LoadedRule) => void = () => {}): RuleRunner {
  const stopping = new AbortController();
  const alarms = () => targets.alarms;

  const track = (lr: LoadedRule, action: string, p: Promise<unknown>) => {
    p.then(
      () => lr.stats.actionsOk++,
      (err: Error & { attempts?: number }) => {
        if (stopping.signal.aborted) return;
        lr.stats.actionFailed(action, err.message, err.attempts ?? 1);
        log.warn({ rule: lr.rule.id, action, err: err.message }, 'rule action failed');
      },
    );
  };

  const sendCommands = (lr: LoadedRule, commands: CommandRequest[]) => {
    for (const c of commands) {
      if (!lr.limiter.take()) {
        lr.stats.commandsRateLimited++;
        continue;
      }
      lr.stats.commandsSent++;
      track(lr, `send_command ${c.command} → ${c.device_id}`, Promise.resolve().then(() => delivered(commandSender(targets.downlink).send(c.device_id, c.command, c.params))));
    }
  };

  const raiseAlarms = (lr: LoadedRule, deviceId: string, list: AlarmRequest[]) => {
    for (const a of list) {
      const center = alarms();
      if (!center) {
        lr.stats.actionFailed('raise_alarm', 'the alarm center is not running', 1);
        continue;
      }
      track(lr, 'raise_alarm', center.raise({ rule_id: lr.rule.id || null, device_id: deviceId, level: a.level, message: a.message }));
    }
  };

  const act = (lr: LoadedRule, input: RuleInput, sm: ScriptMessage, outcome: RunOutcome) => {
    const rule = lr.rule;
    switch (rule.action_type) {
      case 'webhook': {
        const cfg = rule.action_config as WebhookAction;
        const body = { rule: { id: rule.id, name: rule.name }, device_id: sm.device_id, product: sm.product ?? null, msg: sm, result: outcome.result, logs: outcome.logs ?? [], ts: Date.now() };
        track(lr, `webhook ${cfg.url}`, postWebhook(cfg, body, stopping.signal));
        break;
      }
      case 'command': {
        const cfg = rule.action_config as CommandAction;
        const device = cfg.device_id ?? sm.device_id;
        if (!lr.limiter.take()) {
          lr.stats.commandsRateLimited++;
          break;
        }
        lr.stats.commandsSent++;
        track(lr, `command ${cfg.command} → ${device}`, Promise.resolve().then(() => delivered(commandSender(targets.downlink).send(device, cfg.command, cfg.params ?? {}))));
        break;
      }
      case 'alarm': {
        const cfg = rule.action_config as AlarmAction;
        raiseAlarms(lr, input.message.device_id, [{ level: cfg.level ?? 'warning', message: fillTemplate(cfg.message ?? rule.name, sm) }]);
        break;
      }
      default:
        // 'flow': the caller (the `flux rule` node) emits the message on its output.
        break;
    }
  };

  /** Counts limit hits in a row; the QUARANTINE_AFTER-th quarantines the rule, with a log line and an alarm. */
  const watchLimits = (lr: LoadedRule, outcome: RunOutcome) => {
    const code = outcome.error?.code;
    if (!code || !LIMIT_CODES.has(code)) {
      lr.limitHits = 0;
      return;
    }
    if (++lr.limitHits < QUARANTINE_AFTER || lr.quarantine) return;
    const rule = lr.rule;
    const reason = `hit its limits ${lr.limitHits} times in a row (last: ${outcome.error!.message}); save the rule to run it again`;
    lr.quarantine = { reason, at: new Date().toISOString() };
    log.warn({ rule: rule.id || undefined, name: rule.name, reason }, `rule "${rule.name}" quarantined`);
    onQuarantine(lr);
    const center = alarms();
    if (center) track(lr, 'raise_alarm', center.raise({ rule_id: rule.id || null, device_id: null, level: 'critical', message: `rule "${rule.name}" quarantined: ${reason}` }));
  };

  /**
   * The rule span's detail, one frozen object per rule version and outcome: the trace keeps the last
   * 20,000 uplinks' details, and a fresh object per run was one more to copy at every scavenge.
   */
  const traceDetails = new WeakMap<Rule, [Readonly<Record<string, unknown>>, Readonly<Record<string, unknown>>]>();
  const traceDetail = (lr: LoadedRule, triggered: boolean): Readonly<Record<string, unknown>> => {
    const rule = lr.rule;
    let pair = traceDetails.get(rule);
    if (!pair) {
      const make = (t: boolean) => Object.freeze({ rule: rule.name, rule_id: rule.id || undefined, triggered: t, action: t ? rule.action_type : undefined });
      traceDetails.set(rule, (pair = [make(false), make(true)]));
    }
    return pair[triggered ? 1 : 0];
  };

  const settle = (lr: LoadedRule, input: RuleInput, sm: ScriptMessage, outcome: RunOutcome): RuleRun => {
    const rule = lr.rule;
    const head = { id: rule.id || null, name: rule.name, action_type: rule.action_type, version: rule.version };
    const stats = lr.stats;
    const skipped = outcome.error?.code === 'script_quarantined';
    // A run skipped by the pool (queued before the quarantine) is neither a run nor an error.
    if (!skipped) stats.record(outcome.micros);
    watchLimits(lr, outcome);
    let triggered = false;
    if (skipped) {
      // nothing ran
    } else if (!outcome.ok) {
      stats.error(outcome.error!.code, outcome.error!.message);
    } else {
      triggered = outcome.result === true;
      // Side effects only for a run that completed: a failed run does nothing half-way.
      if (outcome.commands) sendCommands(lr, outcome.commands);
      if (outcome.alarms) raiseAlarms(lr, sm.device_id, outcome.alarms);
      if (triggered) {
        stats.triggers++;
        act(lr, input, sm, outcome);
      } else if (rule.action_config.auto_clear && rule.id) {
        const center = alarms();
        if (center?.hasOpen(rule.id, sm.device_id)) track(lr, 'auto_clear', center.clearFor(rule.id, sm.device_id));
      }
    }
    if (input.msgId) ctx.trace.span(input.msgId, { stage: 'rule', took_ms: outcome.micros / 1000, ok: outcome.ok, detail: traceDetail(lr, triggered), error: outcome.error?.message });
    return { rule: head, triggered, outcome };
  };

  const submit: RuleRunner['submit'] = (lr, input, sm, done) => {
    const script = lr.script;
    if (!script) {
      const outcome: RunOutcome = { ok: false, error: { code: 'script_syntax', message: lr.compileError ?? 'not compiled' }, logs: null, commands: null, alarms: null, micros: 0 };
      lr.stats.error('script_syntax', outcome.error!.message);
      return done(failedRun(lr, outcome));
    }
    script.submit(sm, (outcome) => {
      let run: RuleRun;
      try {
        run = settle(lr, input, sm, outcome);
      } catch (err) {
        // settle's side effects are guarded; this keeps one bad rule from failing the others of a batch
        log.error({ rule: lr.rule.id, err: (err as Error).message }, 'rule run could not be settled');
        run = failedRun(lr, { ok: false, error: { code: 'script_error', message: (err as Error).message }, logs: null, commands: null, alarms: null, micros: outcome.micros });
      }
      done(run);
    });
  };

  const runMatching: RuleRunner['runMatching'] = (rules, input, done) => {
    const deviceId = input.message.device_id;
    const productId = input.device?.product_id;
    let sm: ScriptMessage | undefined;
    let runs: RuleRun[] | undefined;
    let open = 1;
    const answer = (i: number, run: RuleRun) => {
      runs![i] = run;
      if (--open === 0) done(runs!);
    };
    for (const lr of rules) {
      const rule = lr.rule;
      if (!rule.enabled || lr.quarantine) continue;
      if (rule.device_id && rule.device_id !== deviceId) continue;
      if (rule.product_id && rule.product_id !== productId) continue;
      const i = (runs ??= []).push(undefined as unknown as RuleRun) - 1;
      open++;
      submit(lr, input, (sm ??= toScriptMessage(input)), (run) => answer(i, run));
    }
    // the loop's own count: `done` waits for every run, even one answered synchronously
    if (--open === 0) done(runs ?? []);
  };

  return {
    run: (lr, input, sm = toScriptMessage(input)) => new Promise((resolve) => submit(lr, input, sm, resolve)),
    submit,
    runMatching,
    stop() {
      stopping.abort();
    },
  };
}
