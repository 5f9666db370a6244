/** Per-rule counters (runs, triggers, errors, run-time mean and p99) and their Prometheus view, computed only when scraped. */
import { Counter, Gauge } from 'prom-client';
import type { MetricsRegistry } from '../metrics/index.ts';
import type { Logger } from '../log/index.ts';
import type { ActionFailure, RuleStatsView } from '../api-shapes/index.ts';

const WINDOW = 1024;

export type { ActionFailure, RuleStatsView };

export class RuleStats {
  runs = 0;
  triggers = 0;
  errors = 0;
  lastError: RuleStatsView['last_error'] = null;
  actionsOk = 0;
  actionsFailed = 0;
  commandsSent = 0;
  commandsRateLimited = 0;
  failures: ActionFailure[] = [];
  #times = new Float64Array(WINDOW);
  #n = 0;

  record(micros: number): void {
    this.#times[this.#n++ % WINDOW] = micros;
    this.runs++;
  }

  error(code: string, message: string): void {
    this.errors++;
    this.lastError = { at: new Date().toISOString(), code, message };
  }

  actionFailed(action: string, error: string, attempts: number): void {
    this.actionsFailed++;
    this.failures.push({ at: new Date().toISOString(), action, error, attempts });
    if (this.failures.length > 20) this.failures.shift();
  }

  timing(): { mean: number; p99: number } {
    const n = Math.min(this.#n, WINDOW);
    if (n === 0) return { mean: 0, p99: 0 };
    const a = this.#times.slice(0, n).sort();
    let sum = 0;
    for (let i = 0; i < n; i++) sum += a[i]!;
    return { mean: Math.round(sum / n), p99: a[Math.min(n - 1, Math.ceil(n * 0.99) - 1)]! };
  }

  view(): RuleStatsView {
    const t = this.timing();
    return {
      runs: this.runs,
      triggers: this.triggers,
      errors: this.errors,
      last_error: this.lastError,
      mean_micros: t.mean,
      p99_micros: t.p99,
      actions_ok: this.actionsOk,
      actions_failed: this.actionsFailed,
      commands_sent: this.commandsSent,
      commands_rate_limited: this.commandsRateLimited,
      action_failures: [...this.failures],
    };
  }
}

/** Registers the rule metrics on `registry`; `rules()` lists the live rules when Prometheus scrapes. */
export function registerRuleMetrics(registry: MetricsRegistry, rules: () => Iterable<{ id: string; name: string; stats: RuleStats }>): void {
  const labelNames = ['rule_id', 'rule'];
  const fresh = (name: string) => {
    registry.removeSingleMetric(name);
    return name;
  };
  const counterOf = (name: string, help: string, pick: (s: RuleStats) => number) =>
    new Counter({
      name: fresh(name), help, labelNames, registers: [registry],
      collect() {
        this.reset();
        for (const r of rules()) this.inc({ rule_id: r.id, rule: r.name }, pick(r.stats));
      },
    });
  counterOf('flux_rule_runs_total', 'Script runs per rule', (s) => s.runs);
  counterOf('flux_rule_triggers_total', 'Runs that returned true, per rule', (s) => s.triggers);
  counterOf('flux_rule_errors_total', 'Runs that failed (script error, deadline, memory), per rule', (s) => s.errors);
  counterOf('flux_rule_action_failures_total', 'Actions that failed after their retries, per rule', (s) => s.actionsFailed);
  new Gauge({
    name: fresh('flux_rule_run_seconds'), help: 'Script run time per rule over its last 1024 runs (stat = mean | p99)', labelNames: [...labelNames, 'stat'], registers: [registry],
    collect() {
      this.reset();
      for (const r of rules()) {
        const t = r.stats.timing();
        this.set({ rule_id: r.id, rule: r.name, stat: 'mean' }, t.mean / 1e6);
        this.set({ rule_id: r.id, rule: r.name, stat: 'p99' }, t.p99 / 1e6);
      }
    },
  });
}

/**
 * One rule's counters over several nodes of a cluster (runtime/cluster/rule-stats.ts): counts add
 * up, the mean is weighted by runs, p99 is the highest node's (an upper bound, not the cluster's
 * percentile), the newest error and the newest 20 action failures are kept.
 */
export function mergeStats(views: RuleStatsView[]): RuleStatsView {
  const sum = (f: (v: RuleStatsView) => number) => views.reduce((s, v) => s + (Number.isFinite(f(v)) ? f(v) : 0), 0);
  const runs = sum((v) => v.runs);
  const lastError = views.map((v) => v.last_error).filter((e) => e !== null).sort((x, y) => (x!.at < y!.at ? -1 : 1)).at(-1) ?? null;
  return {
    runs,
    triggers: sum((v) => v.triggers),
    errors: sum((v) => v.errors),
    last_error: lastError,
    mean_micros: runs ? Math.round(sum((v) => v.mean_micros * v.runs) / runs) : 0,
    p99_micros: views.reduce((m, v) => Math.max(m, v.p99_micros || 0), 0),
    actions_ok: sum((v) => v.actions_ok),
    actions_failed: sum((v) => v.actions_failed),
    commands_sent: sum((v) => v.commands_sent),
    commands_rate_limited: sum((v) => v.commands_rate_limited),
    action_failures: views.flatMap((v) => v.action_failures ?? []).sort((x, y) => (x.at < y.at ? -1 : x.at > y.at ? 1 : 0)).slice(-20),
  };
}

/** The counters other nodes of a cluster keep for rules (runtime/cluster/rule-stats.ts). */
export interface ClusterRuleStats {
  /** rule id → the other nodes' counters (this node's excluded); a rule no other node ran is absent */
  others(ids: string[]): Promise<Map<string, RuleStatsView[]>>;
}

/** Cluster mode: each view's counters summed with the other nodes'; without their answer (Redis down), this node's alone. */
export async function sumClusterStats<V extends { id: string; stats: RuleStatsView }>(views: V[], cluster: ClusterRuleStats | undefined, log: Logger): Promise<V[]> {
  if (!cluster || views.length === 0) return views;
  let others: Map<string, RuleStatsView[]>;
  try {
    others = await cluster.others(views.map((v) => v.id));
  } catch (err) {
    log.warn({ err: (err as Error).message }, "the other nodes' rule counters cannot be read; showing this node's");
    return views;
  }
  return views.map((v) => {
    const o = others.get(v.id);
    return o?.length ? { ...v, stats: mergeStats([v.stats, ...o]) } : v;
  });
}
