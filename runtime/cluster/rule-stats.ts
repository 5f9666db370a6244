/**
 * Rule counters of every node (docs/cluster.md "Rule counters"): each node writes its counters of
 * each rule it ran into the Redis hash `<prefix>rulestats:<rule id>` (field: its node id, value: the
 * counters as JSON) every PUBLISH_EVERY_MS when they changed; a node showing a rule adds the other
 * nodes' fields to its own (runtime/rules `ClusterRuleStats`). A hash lives a day past its last
 * write, so a deleted rule's counters go away by themselves.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../log/index.ts';
import type { FluxModule } from '../app/context.ts';
import type { ClusterRuleStats, RuleStatsView } from '../rules/index.ts';
import { closeRedis, connectOrExplain, openRedis, type RedisTarget } from './connection.ts';

export const PUBLISH_EVERY_MS = 2_000;
const KEEP_S = 86_400;
/** rules read per call at most (a list of more shows the rest with this node's counters only) */
const MAX_READ = 1_000;
const MAX_FIELD_BYTES = 64 * 1024;

export const ruleStatsKey = (ruleId: string) => `rulestats:${ruleId}`;

export interface ClusterRuleStatsPart extends ClusterRuleStats {
  /** writes this node's counters; start it after the rule engine */
  module(local: () => { id: string; stats: RuleStatsView }[]): FluxModule;
}

export function createClusterRuleStats(opts: { target: RedisTarget; nodeId: string; log: Logger; everyMs?: number }): ClusterRuleStatsPart {
  const { target, nodeId } = opts;
  const log = opts.log.child({ module: 'cluster-rule-stats' });
  let redis: Redis | undefined;

  return {
    async others(ids) {
      const out = new Map<string, RuleStatsView[]>();
      const r = redis;
      if (!r || ids.length === 0) return out;
      const batch = ids.slice(0, MAX_READ);
      const answers = await r.pipeline(batch.map((id) => ['hgetall', ruleStatsKey(id)])).exec();
      batch.forEach((id, i) => {
        const [err, fields] = answers?.[i] ?? [null, null];
        if (err || !fields) return;
        const views: RuleStatsView[] = [];
        for (const [node, json] of Object.entries(fields as Record<string, string>)) {
          if (node === nodeId || json.length > MAX_FIELD_BYTES) continue;
          try {
            views.push(JSON.parse(json) as RuleStatsView);
          } catch {
            // a field this version did not write
          }
        }
        if (views.length) out.set(id, views);
      });
      return out;
    },
    module(local) {
      let timer: NodeJS.Timeout | undefined;
      const written = new Map<string, string>();
      let writing = false;
      const publish = async () => {
        const r = redis;
        if (writing || !r || r.status !== 'ready') return;
        writing = true;
        try {
          const p = r.pipeline();
          let n = 0;
          for (const { id, stats } of local()) {
            if (stats.runs === 0 && stats.errors === 0) continue;
            const json = JSON.stringify(stats);
            if (written.get(id) === json) continue;
            written.set(id, json);
            p.hset(ruleStatsKey(id), nodeId, json).expire(ruleStatsKey(id), KEEP_S);
            n++;
          }
          if (n) await p.exec();
        } catch (err) {
          written.clear(); // write everything again next time
          log.warn({ err: (err as Error).message }, 'rule counters could not be written to Redis');
        } finally {
          writing = false;
        }
      };
      return {
        name: 'cluster_rule_stats',
        async start() {
          const r = openRedis(target, 'cluster-rule-stats', log, { keys: true, lazy: true });
          await connectOrExplain(r, target.url);
          redis = r;
          timer = setInterval(() => void publish(), opts.everyMs ?? PUBLISH_EVERY_MS);
          timer.unref();
        },
        async stop() {
          if (timer) clearInterval(timer);
          timer = undefined;
          await publish();
          const r = redis;
          redis = undefined;
          if (r) await closeRedis(r);
        },
      };
    },
  };
}
