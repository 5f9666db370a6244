/**
 * @module rules — the rule engine: rules from the registry compiled into QuickJS sandboxes, hot
 * reloaded on save (and by polling, for rules saved by another node), filtered by product and
 * device, with per-rule counters and the actions webhook | command | alarm | flow.
 * Registered as the service `rules`; the `flux rule` node and /api/rules use it.
 *
 * QuickJS (~9 MB of RSS) is loaded on first need: on start only when an enabled rule exists,
 * else on the first save, test, listing of a not yet compiled rule or inline script
 * (`loadScripts()`). Compiling stays synchronous once it is there.
 */
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import type { RuleRepository, RuleRow } from '../registry/index.ts';
import { FluxError, badRequest, notFound, unknownReference } from '../errors/index.ts';
import { createScriptHost, ScriptSyntaxError, type ScriptHost, type ScriptLimits, type ScriptPoolOptions, type CommandRequest, type AlarmRequest, type LogEntry } from '../scripts/index.ts';
import { RuleStats, registerRuleMetrics, sumClusterStats, type ClusterRuleStats, type RuleStatsView } from './stats.ts';
import { RateLimit } from './actions.ts';
import { createRuleReload } from './reload.ts';
import { createRuleRunner, toScriptMessage, type RuleActionTargets, type LoadedRule, type RuleInput, type RuleRun, type RuleRunner } from './engine.ts';
import { parseActionConfig, type Rule, type RuleInput as RuleCreate, type RulePatch, type ActionType } from './schema.ts';

export { ruleCreate, rulePatch, ACTION_TYPES, type Rule, type ActionType, type RuleInput as RuleCreate, type RulePatch } from './schema.ts';
export { type RuleInput, type RuleRun, type RuleActionTargets } from './engine.ts';
export { type RuleStatsView, type ClusterRuleStats } from './stats.ts';
export { type CommandSender } from './actions.ts';

/** `quarantined`: the rule hit its limits repeatedly and is skipped until it is saved again (then `quarantine_reason`, `quarantined_at`). */
export type RuleView = Rule & { stats: RuleStatsView; compile_error?: string; quarantined: boolean; quarantine_reason?: string; quarantined_at?: string };

export interface TestAnswer {
  result?: unknown;
  triggered?: boolean;
  error?: { code: string; message: string };
  logs: LogEntry[];
  commands: CommandRequest[];
  alarms: AlarmRequest[];
  micros: number;
  /** what the rule's action would do (nothing is done) */
  action?: { type: ActionType; config: Record<string, unknown> } | null;
}

export interface InlineRule {
  run(input: RuleInput): Promise<RuleRun>;
  dispose(): void;
}

export interface RuleEngine extends FluxModule {
  /** The script host; throws 503 until it is loaded (see loadScripts). */
  readonly scripts: ScriptHost;
  /** Loads the script host if it is not yet (QuickJS is loaded on first need). */
  loadScripts(): Promise<ScriptHost>;
  list(filter?: { enabled?: boolean; product_id?: string; device_id?: string }): Promise<RuleView[]>;
  get(id: string): Promise<RuleView>;
  create(input: RuleCreate): Promise<RuleView>;
  update(id: string, patch: RulePatch): Promise<RuleView>;
  delete(id: string): Promise<void>;
  /** Runs rule `id` on a sample message, doing nothing it asks. */
  test(id: string, msg: RuleInput['message'], device?: RuleInput['device']): Promise<TestAnswer>;
  /** Runs an unsaved script on a sample message (a syntax error throws 400). */
  testScript(source: string, msg: RuleInput['message'], env?: Record<string, unknown>): Promise<TestAnswer>;
  /** Runs every enabled, not quarantined rule that matches the message (in the script workers); answers in creation order. */
  evaluate(input: RuleInput): Promise<RuleRun[]>;
  /** `evaluate` without a Promise: `done` is called once, with the runs in creation order. */
  evaluateEach(input: RuleInput, done: (runs: RuleRun[]) => void): void;
  /** This node's counters of every loaded rule (cluster mode shares them). */
  localStats(): { id: string; stats: RuleStatsView }[];
  /** Loads rule `id` as stored (unloads it when it is gone): a change another node made. */
  reload(id: string): Promise<void>;
  /** A script outside the registry (the `flux rule` node's inline mode); its side effects are real. Call after loadScripts(). */
  inline(source: string, opts?: { name?: string; env?: Record<string, unknown>; commandsPerSecond?: number }): InlineRule;
}

export interface RuleEngineOptions {
  limits?: Partial<ScriptLimits>;
  /** the script worker pool (workers, hard limit, heap maximum…) */
  pool?: Partial<ScriptPoolOptions>;
  /** how often to look for rules changed by another node; 0 turns it off */
  pollMs?: number;
  /** called once a rule's save or deletion is stored (cluster mode tells the other nodes) */
  onChange?: (id: string) => void;
  /** cluster mode: views show the counters of every node, summed */
  clusterStats?: ClusterRuleStats;
}

/** A stored rule as the engine sees it: the action type and config were checked when it was saved. */
const asRule = (row: RuleRow): Rule => row as Rule;

/** `store`: where rules are kept; `targets`: what triggered rules raise alarms and send commands through. */
export function createRuleEngine(ctx: FluxContext, store: RuleRepository, targets: RuleActionTargets, opts: RuleEngineOptions = {}): RuleEngine {
  const log = ctx.log.child({ module: 'rules' });
  const loaded = new Map<string, LoadedRule>();
  let ordered: LoadedRule[] = [];
  let host: ScriptHost | undefined;
  let hostLoading: Promise<ScriptHost> | undefined;
  let started = false;
  let runner: RuleRunner | undefined;
  let poll: NodeJS.Timeout | undefined;

  const scripts = (): ScriptHost => {
    if (!host) throw new FluxError('unavailable', started ? 'the script host is not loaded yet' : 'the rule engine is not started', 503);
    return host;
  };

  /** Creates the script host once; rules deferred until then are compiled as soon as it is there. */
  const loadScripts = (): Promise<ScriptHost> => {
    if (host) return Promise.resolve(host);
    hostLoading ??= createScriptHost(opts.limits, {
      ...opts.pool,
      onRestart: (info) => log.warn({ reason: info.reason }, 'script worker replaced'),
    }).then(
      (h) => {
        host = h;
        for (const lr of [...loaded.values()]) if (lr.deferred) load(lr.rule);
        log.debug({ rules: loaded.size }, 'script host loaded');
        return h;
      },
      (err: unknown) => {
        hostLoading = undefined;
        throw err;
      },
    );
    return hostLoading;
  };

  const reorder = () => {
    ordered = [...loaded.values()].sort((a, b) => (a.rule.created_at < b.rule.created_at ? -1 : a.rule.created_at > b.rule.created_at ? 1 : a.rule.id < b.rule.id ? -1 : 1));
  };

  const rate = (rule: Rule) => Number(rule.action_config.commands_per_second ?? 10);

  /**
   * Compiles and swaps in a rule; keeps its counters across versions. Without a script host yet the
   * rule is kept uncompiled (`deferred`) and compiled once the host is there; callers load the host
   * first for an enabled rule (an enabled one deferred here starts the load itself).
   */
  const load = (rule: Rule): LoadedRule => {
    const prev = loaded.get(rule.id);
    // A new version starts without quarantine: saving a quarantined rule is what runs it again.
    const lr: LoadedRule = { rule, stats: prev?.stats ?? new RuleStats(), limiter: prev && prev.limiter.rate === rate(rule) ? prev.limiter : new RateLimit(rate(rule)), limitHits: 0 };
    if (rule.quarantined_at) lr.quarantine = { reason: rule.quarantine_reason ?? 'quarantined', at: rule.quarantined_at };
    if (!host) {
      lr.deferred = true;
      if (rule.enabled) loadScripts().catch((err: Error) => log.error({ err: err.message }, 'the script host cannot be loaded'));
    } else {
      try {
        lr.script = host.load(rule.trigger_script, rule.env);
      } catch (err) {
        lr.compileError = (err as Error).message;
        log.warn({ rule: rule.id, err: lr.compileError }, 'rule script does not compile');
      }
    }
    loaded.set(rule.id, lr);
    prev?.script?.dispose();
    reorder();
    return lr;
  };

  const unload = (id: string) => {
    const lr = loaded.get(id);
    if (!lr) return;
    loaded.delete(id);
    lr.script?.dispose();
    reorder();
  };

  const view = (rule: Rule): RuleView => {
    const lr = loaded.get(rule.id);
    const q = lr?.quarantine ?? (rule.quarantined_at ? { reason: rule.quarantine_reason ?? 'quarantined', at: rule.quarantined_at } : undefined);
    const { quarantined_at: _at, quarantine_reason: _reason, ...columns } = rule;
    const v: RuleView = { ...columns, stats: (lr?.stats ?? new RuleStats()).view(), quarantined: q !== undefined };
    if (lr?.compileError) v.compile_error = lr.compileError;
    if (q) {
      v.quarantine_reason = q.reason;
      v.quarantined_at = q.at;
    }
    return v;
  };

  const withClusterStats = (views: RuleView[]) => sumClusterStats(views, opts.clusterStats, log);

  const findRule = async (id: string) => {
    const row = await store.find(id);
    if (!row) throw notFound('rule', id);
    return asRule(row);
  };

  /** The stored columns of a rule, with the validated action config and product id. */
  const columns = (
    r: { name: string; enabled: boolean; trigger_script: string; action_type: ActionType; device_id?: string | null; env?: Record<string, unknown> | null },
    v: { action_config: Record<string, unknown>; product_id: string | null },
  ) => ({
    name: r.name,
    enabled: r.enabled,
    trigger_script: r.trigger_script,
    action_type: r.action_type,
    action_config: v.action_config,
    product_id: v.product_id,
    device_id: r.device_id ?? null,
    env: r.env ?? {},
  });

  /** Checks and normalises what will be stored: product (id or key), action config, script. */
  const validate = async (r: { trigger_script: string; action_type: ActionType; action_config?: Record<string, unknown>; product_id?: string | null; device_id?: string | null; env?: Record<string, unknown> }, checkDevices = true) => {
    const cfg = parseActionConfig(r.action_type, r.action_config ?? {});
    if (!cfg.success) {
      const msg = cfg.error.issues.slice(0, 5).map((i) => `action_config${i.path.length ? '.' + i.path.join('.') : ''}: ${i.message}`).join('; ');
      throw badRequest(`invalid action_config for action_type '${r.action_type}': ${msg}`);
    }
    let productId: string | null = r.product_id ?? null;
    if (productId) {
      const p = await ctx.registry.products.find(productId);
      if (!p) throw unknownReference('body.product_id', 'product', productId);
      productId = p.id;
    }
    // Devices named by the rule must exist when they are set (a device deleted later is the rule's own business).
    const commandDevice = checkDevices && r.action_type === 'command' ? (cfg.data as { device_id?: string }).device_id : undefined;
    if (commandDevice && !(await ctx.registry.devices.find(commandDevice))) throw unknownReference('body.action_config.device_id', 'device', commandDevice);
    if (checkDevices && r.device_id && !(await ctx.registry.devices.find(r.device_id))) throw unknownReference('body.device_id', 'device', r.device_id);
    const h = await loadScripts();
    try {
      h.compile(r.trigger_script, r.env ?? {}).dispose();
    } catch (err) {
      if (err instanceof ScriptSyntaxError) throw new FluxError('script_syntax', `trigger_script: ${err.message}`, 400, { line: err.line, column: err.column });
      throw err;
    }
    return { action_config: cfg.data as Record<string, unknown>, product_id: productId };
  };

  /** A throwaway copy of the script in the workers: no counters, no quarantine, no side effects. */
  const runForTest = async (source: string, env: Record<string, unknown>, input: RuleInput, rule?: Rule): Promise<TestAnswer> => {
    let script;
    try {
      script = scripts().load(source, env);
    } catch (err) {
      if (err instanceof ScriptSyntaxError) return { error: { code: 'script_syntax', message: err.message }, logs: [], commands: [], alarms: [], micros: 0 };
      throw err;
    }
    try {
      const o = await script.run(toScriptMessage(input));
      const base = { logs: o.logs ?? [], commands: o.commands ?? [], alarms: o.alarms ?? [], micros: o.micros };
      if (!o.ok) return { error: o.error, ...base };
      const triggered = o.result === true;
      return { result: o.result ?? null, triggered, ...base, action: rule && triggered ? { type: rule.action_type, config: rule.action_config } : null };
    } finally {
      script.dispose();
    }
  };

  const reloading = createRuleReload({ store, loaded, load: (rule) => void load(rule), unload, loadScripts, started: () => started, log });

  /** A view tells a rule's compile error: rules deferred at start are compiled before one is shown. */
  const compileDeferred = async () => {
    for (const lr of loaded.values()) {
      if (lr.deferred) {
        await loadScripts();
        return;
      }
    }
  };

  /** Runs every enabled, not quarantined rule that matches the message; `done` once, runs in creation order. */
  const evaluateEach = (input: RuleInput, done: (runs: RuleRun[]) => void): void => (runner ? runner.runMatching(ordered, input, done) : done([]));

  const engine: RuleEngine = {
    name: 'rules',
    get scripts() {
      return scripts();
    },
    loadScripts,
    async start() {
      started = true;
      runner = createRuleRunner(ctx, log, targets, (lr) => {
        const q = lr.quarantine;
        if (!lr.rule.id || !q) return;
        // Only this version: a save that raced the quarantine wins.
        store.quarantine(lr.rule.id, lr.rule.version, new Date(q.at), q.reason).catch((err: Error) => log.warn({ rule: lr.rule.id, err: err.message }, 'cannot record the quarantine'));
      });
      const rules = (await store.list()).map(asRule);
      // QuickJS only when a rule will run; disabled ones wait for the first need (they compile then).
      if (rules.some((r) => r.enabled)) await loadScripts();
      for (const rule of rules) load(rule);
      registerRuleMetrics(ctx.metrics, () => ordered.map((lr) => ({ id: lr.rule.id, name: lr.rule.name, stats: lr.stats })));
      const every = opts.pollMs ?? 5000;
      if (every > 0) {
        poll = setInterval(() => void reloading.poll(), every);
        poll.unref();
      }
      log.info({ rules: loaded.size }, 'rule engine started');
    },
    async stop() {
      started = false;
      if (poll) clearInterval(poll);
      poll = undefined;
      runner?.stop();
      for (const id of [...loaded.keys()]) unload(id);
      const h = host;
      host = undefined;
      hostLoading = undefined;
      await h?.stop();
    },
    health(): ComponentHealth {
      const broken = ordered.filter((lr) => !lr.script && !lr.deferred).length;
      return { ok: started, rules: loaded.size, enabled: ordered.filter((lr) => lr.rule.enabled).length, not_compiling: broken, scripts_loaded: host !== undefined };
    },
    async list(filter = {}) {
      await compileDeferred();
      let productId: string | undefined;
      if (filter.product_id) {
        const p = await ctx.registry.products.find(filter.product_id);
        if (!p) return [];
        productId = p.id;
      }
      const rows = await store.list({ enabled: filter.enabled, device_id: filter.device_id, product_id: productId });
      return withClusterStats(rows.map((r) => view(asRule(r))));
    },
    async get(id) {
      await compileDeferred();
      return (await withClusterStats([view(await findRule(id))]))[0]!;
    },
    localStats: () => ordered.map((lr) => ({ id: lr.rule.id, stats: lr.stats.view() })),
    async create(input) {
      const v = await validate(input);
      const rule = asRule(await store.create(columns({ ...input, enabled: input.enabled ?? true }, v)));
      load(rule);
      opts.onChange?.(rule.id);
      return view(rule);
    },
    async update(id, patch) {
      const cur = await findRule(id);
      const next = { ...cur, ...patch };
      // A new action type starts from its own defaults unless a config came with it.
      if (patch.action_type && patch.action_type !== cur.action_type && !patch.action_config) next.action_config = {} as Rule['action_config'];
      const v = await validate(next, patch.device_id !== undefined || patch.action_config !== undefined);
      const rule = asRule(await store.update(id, columns(next, v)));
      load(rule);
      opts.onChange?.(rule.id);
      return view(rule);
    },
    async delete(id) {
      await store.delete(id);
      unload(id);
      opts.onChange?.(id);
    },
    reload: (id) => reloading.reload(id),
    async test(id, msg, device) {
      const rule = await findRule(id);
      await loadScripts();
      return runForTest(rule.trigger_script, rule.env, { message: msg, device }, rule);
    },
    async testScript(source, msg, env = {}) {
      await loadScripts();
      try {
        scripts().compile(source, env).dispose();
      } catch (err) {
        if (err instanceof ScriptSyntaxError) throw new FluxError('script_syntax', `trigger_script: ${err.message}`, 400);
        throw err;
      }
      return runForTest(source, env, { message: msg });
    },
    evaluateEach,
    evaluate: (input) => new Promise((resolve) => evaluateEach(input, resolve)),
    inline(source, o = {}) {
      const script = scripts().load(source, o.env ?? {});
      const now = new Date().toISOString();
      const rule: Rule = {
        id: '', name: o.name ?? 'inline script', enabled: true, trigger_script: source, action_type: 'flow', action_config: {},
        product_id: null, device_id: null, env: o.env ?? {}, version: 1, created_at: now, updated_at: now,
      };
      const lr: LoadedRule = { rule, script, stats: new RuleStats(), limiter: new RateLimit(o.commandsPerSecond ?? 10), limitHits: 0 };
      return {
        run(input) {
          if (!runner) return Promise.reject(new FluxError('unavailable', 'the rule engine is stopped', 503));
          if (lr.quarantine) {
            const outcome = { ok: false, error: { code: 'script_quarantined' as const, message: `quarantined: ${lr.quarantine.reason}` }, logs: null, commands: null, alarms: null, micros: 0 };
            return Promise.resolve({ rule: { id: null, name: rule.name, action_type: rule.action_type, version: 1 }, triggered: false, outcome });
          }
          return runner.run(lr, input);
        },
        dispose: () => script.dispose(),
      };
    },
  };
  return engine;
}
