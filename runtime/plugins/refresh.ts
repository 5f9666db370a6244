/**
 * Makes what is live follow the database: the stored active version of a plugin (of every plugin
 * without an id) is loaded where what runs differs, and a plugin with none is unloaded. A cluster's
 * other nodes call it on a change notice and now and then (runtime/cluster/changes.ts), so an
 * install, hot swap, rollback, limit change or removal on one node takes effect on all.
 */
import type { Logger } from '../log/index.ts';
import { checkSlug } from '../safe-id/index.ts';
import type { PluginStore } from './store.ts';
import type { Active, PluginLimits, PluginVersion } from './types.ts';

export interface RefreshDeps {
  store: PluginStore;
  active: ReadonlyMap<string, Active>;
  defaults: PluginLimits;
  keyOf(id: string, version: number, limits: PluginLimits): string;
  locked(id: string, fn: () => Promise<void>): Promise<void>;
  activate(id: string, v: PluginVersion): Promise<void>;
  /** unloads the plugin and forgets its call counts */
  unload(id: string): void;
  running(): boolean;
  log: Logger;
}

export function createRefresh(deps: RefreshDeps): (only?: string) => Promise<void> {
  const { store, active, log } = deps;
  /** Whether what is live for `id` differs from its stored active version (`row`; undefined: none). */
  const stale = (id: string, row: PluginVersion | undefined): boolean => {
    const a = active.get(id);
    if (!row) return a !== undefined;
    const limits = row.meta.limits ?? deps.defaults;
    return !a || a.key !== deps.keyOf(id, row.version, limits) || a.sha256 !== row.sha256 || a.deadlineMs !== limits.deadline_ms;
  };
  return async (only) => {
    if (!deps.running()) return;
    if (only) checkSlug('plugin', only);
    const rows = only ? (await store.versionsOf(only)).filter((v) => v.active) : await store.activeVersions();
    const ids = only ? [only] : [...new Set([...active.keys(), ...rows.map((r) => r.id)])];
    for (const id of ids) {
      if (!stale(id, rows.find((r) => r.id === id))) continue;
      await deps.locked(id, async () => {
        // read again under the lock: an operation of this node may have run meanwhile
        const row = (await store.versionsOf(id)).find((v) => v.active);
        if (!stale(id, row) || !deps.running()) return;
        if (!row) {
          deps.unload(id);
          log.info({ plugin: id }, 'plugin unloaded: removed or deactivated on another node');
          return;
        }
        try {
          await deps.activate(id, row);
          log.info({ plugin: id, version: row.version }, 'plugin version activated as stored (changed on another node)');
        } catch (err) {
          log.error({ plugin: id, version: row.version, err: (err as Error).message }, 'plugin version changed on another node cannot be loaded');
        }
      });
    }
  };
}
