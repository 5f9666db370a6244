/**
 * Shared configuration across nodes (docs/cluster.md "Shared configuration"): rules, plugins,
 * products and devices live in the shared database; a node that changed one (committed first)
 * publishes a small notice on `<prefix>changes`, and every other node reloads that entity from the
 * database: the rule engine that rule, the plugin host the stored active version, the registry
 * drops its cached identities, the flow engine runs the stored flows. A notice lost (Redis down, a node restarting) is healed by the
 * reconciliation: the rule engine's own poll (runtime/rules, every 5 s) and, here, a plugin and
 * flows refresh every RECONCILE_MS and after each reconnection to Redis.
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../log/index.ts';
import type { ComponentHealth, FluxModule } from '../app/context.ts';
import type { AlarmEvent } from '../alarms/index.ts';
import { closeRedis, connectOrExplain, openRedis, type RedisTarget } from './connection.ts';

/** what changed; `device` without an id: every device (a bulk create) */
export type ChangeNotice = { k: 'rule'; id: string } | { k: 'plugin'; id: string } | { k: 'device'; id?: string } | { k: 'product'; id: string } | { k: 'flows'; id?: undefined };

/** What a notice reloads on this node (the composition root passes the modules). */
export interface ChangeTargets {
  rules: { reload(id: string): Promise<void> };
  plugins: { refresh(id?: string): Promise<void> };
  registry: { invalidate(deviceId?: string): void; invalidateProduct(productId: string): void };
  alarms: { applyRemote(ev: AlarmEvent): void };
  /** closes this node's connections of a device whose access a change revoked (runtime/ingress/revocation.ts); `sweep` checks every device connected here */
  revoker?: { check(deviceId: string): Promise<number>; sweep(): Promise<number> };
  /** the flow engine (absent when FLUX runs without flows) */
  flows?: { reload(): Promise<void> };
}

export interface ClusterChanges {
  /** tells the other nodes; dropped (and healed by their reconciliation) when Redis cannot take it now */
  publish(notice: ChangeNotice): void;
  /** an alarm event of this node, for the other nodes' live feeds (dropped like a notice when Redis cannot take it) */
  publishAlarm(ev: AlarmEvent): void;
  /** the module that listens (start it after the modules it reloads) */
  module(targets: ChangeTargets): FluxModule;
}

export const RECONCILE_MS = 30_000;
/** notices waiting to be applied here; past it everything is reloaded once instead */
const MAX_QUEUED = 10_000;
/** publishes not yet answered by Redis; past it new notices are dropped */
const MAX_PUBLISHING = 1_000;
/** a notice is tiny; an alarm event holds the alarm (its message is at most 1,000 characters) */
const MAX_NOTICE_BYTES = 16_384;
const ALARM_EVENTS = new Set(['raised', 'repeated', 'acknowledged', 'cleared']);

export const changesChannel = (prefix: string) => `${prefix}changes`;

const valid = (n: unknown): n is ChangeNotice & { from: string } => {
  const o = n as Record<string, unknown> | null;
  if (!o || typeof o !== 'object' || typeof o.from !== 'string') return false;
  if (o.k === 'device') return o.id === undefined || typeof o.id === 'string';
  if (o.k === 'flows') return true;
  return (o.k === 'rule' || o.k === 'plugin' || o.k === 'product') && typeof o.id === 'string';
};

export function createClusterChanges(opts: { target: RedisTarget; nodeId: string; log: Logger; reconcileMs?: number }): ClusterChanges {
  const { target, nodeId } = opts;
  const log = opts.log.child({ module: 'cluster-changes' });
  const channel = changesChannel(target.prefix);
  let pub: Redis | undefined;
  let publishing = 0;
  let dropped = 0;

  const send = (message: Record<string, unknown>) => {
    const p = pub;
    if (!p || p.status !== 'ready' || publishing >= MAX_PUBLISHING) {
      dropped++;
      return;
    }
    publishing++;
    p.publish(channel, JSON.stringify({ ...message, from: nodeId }))
      .catch((err: Error) => {
        dropped++;
        log.warn({ k: message.k, err: err.message }, 'a change notice could not be published; the other nodes reconcile within 30 s');
      })
      .finally(() => publishing--);
  };

  return {
    publish: (notice) => send(notice),
    publishAlarm: (ev) => send({ k: 'alarm', event: ev }),
    module(targets) {
      let sub: Redis | undefined;
      let timer: NodeJS.Timeout | undefined;
      const queue = new Map<string, ChangeNotice>();
      let everything = false;
      let draining = false;
      let applied = 0;
      let failed = 0;

      const apply = async (n: ChangeNotice) => {
        if (n.k === 'rule') await targets.rules.reload(n.id);
        else if (n.k === 'plugin') await targets.plugins.refresh(n.id);
        else if (n.k === 'product') targets.registry.invalidateProduct(n.id);
        else if (n.k === 'flows') await targets.flows?.reload();
        else {
          targets.registry.invalidate(n.id);
          // disabled, deleted, a new secret: the connections the device holds here close
          if (n.id) await targets.revoker?.check(n.id);
        }
      };

      const reconcile = async () => {
        targets.registry.invalidate();
        await targets.plugins.refresh();
        await targets.flows?.reload();
      };

      // one notice at a time, in arrival order; a second notice for the same entity waiting is merged
      const drain = async () => {
        if (draining) return;
        draining = true;
        try {
          while (everything || queue.size) {
            if (everything) {
              everything = false;
              queue.clear();
              await reconcile().catch((err: Error) => log.warn({ err: err.message }, 'reconciliation failed'));
              continue;
            }
            const [key, n] = queue.entries().next().value as [string, ChangeNotice];
            queue.delete(key);
            try {
              await apply(n);
              applied++;
            } catch (err) {
              failed++;
              log.warn({ notice: n, err: (err as Error).message }, 'a change made on another node could not be applied here (retried by the reconciliation)');
            }
          }
        } finally {
          draining = false;
        }
      };

      const onMessage = (ch: string, text: string) => {
        if (ch !== channel) return;
        if (text.length > MAX_NOTICE_BYTES) return log.warn({ bytes: text.length }, 'oversized change notice dropped');
        let n: unknown;
        try {
          n = JSON.parse(text);
        } catch {
          return log.warn('unreadable change notice dropped');
        }
        const alarm = n as { k?: string; from?: string; event?: { type?: string; alarm?: { id?: unknown } } };
        if (alarm.k === 'alarm') {
          // applied at once and in order: each is an event of the live feed, not a reload
          if (alarm.from !== nodeId && alarm.event && ALARM_EVENTS.has(String(alarm.event.type)) && typeof alarm.event.alarm?.id === 'string') targets.alarms.applyRemote(alarm.event as AlarmEvent);
          return;
        }
        if (!valid(n) || n.from === nodeId) return;
        const notice: ChangeNotice = n.k === 'device' ? { k: 'device', id: n.id } : n.k === 'flows' ? { k: 'flows' } : { k: n.k, id: n.id };
        if (queue.size >= MAX_QUEUED) everything = true;
        else queue.set(`${notice.k}:${notice.id ?? '*'}`, notice);
        void drain();
      };

      return {
        name: 'cluster_changes',
        async start() {
          sub = openRedis(target, 'cluster-changes-sub', log, { keys: false, lazy: true });
          pub = openRedis(target, 'cluster-changes', log, { keys: false, lazy: true });
          await connectOrExplain(sub, target.url);
          await connectOrExplain(pub, target.url);
          sub.on('message', onMessage);
          await sub.subscribe(channel);
          // connected already: a later 'ready' is a reconnection, and notices sent meanwhile are lost:
          // besides the reconciliation, every device connected here is checked once (a device
          // revoked meanwhile on another node would otherwise keep its connections here)
          sub.on('ready', () => {
            everything = true;
            void drain();
            targets.revoker?.sweep().catch((err: Error) => log.warn({ err: err.message }, 'checking the connected devices after a reconnection failed'));
          });
          timer = setInterval(() => {
            everything = true;
            void drain();
          }, opts.reconcileMs ?? RECONCILE_MS);
          timer.unref();
        },
        async stop() {
          if (timer) clearInterval(timer);
          timer = undefined;
          const s = sub;
          const p = pub;
          sub = pub = undefined;
          await Promise.all([s && closeRedis(s), p && closeRedis(p)]);
        },
        health(): ComponentHealth {
          return { ok: sub?.status === 'ready', applied, failed, dropped, queued: queue.size };
        },
      };
    },
  };
}
