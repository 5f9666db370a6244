/**
 * Rules changed by another process sharing the database: one rule reloaded on a cluster's change
 * notice (runtime/cluster/changes.ts), and the poll that compares every rule's version with the
 * database (every 5 s by default), which also heals a notice that never came.
 */
import type { Logger } from '../log/index.ts';
import type { RuleRepository } from '../registry/index.ts';
import type { LoadedRule } from './engine.ts';
import type { Rule } from './schema.ts';

export interface ReloadDeps {
  store: RuleRepository;
  loaded: ReadonlyMap<string, LoadedRule>;
  load(rule: Rule): void;
  unload(id: string): void;
  loadScripts(): Promise<unknown>;
  started(): boolean;
  log: Logger;
}

export function createRuleReload(deps: ReloadDeps): { reload(id: string): Promise<void>; poll(): Promise<void> } {
  const { store, loaded, log } = deps;
  let polling = false;
  const fresh = async (id: string): Promise<void> => {
    const full = await store.find(id);
    if (!full) return deps.unload(id);
    const rule = full as Rule;
    if (loaded.get(id)?.rule.version === rule.version) return;
    if (rule.enabled) await deps.loadScripts();
    deps.load(rule);
  };
  return {
    async reload(id) {
      if (deps.started()) await fresh(id);
    },
    async poll() {
      if (polling) return;
      polling = true;
      try {
        const seen = new Set<string>();
        for (const { id, version } of await store.versions()) {
          seen.add(id);
          if (loaded.get(id)?.rule.version !== version) await fresh(id);
        }
        for (const id of [...loaded.keys()]) if (!seen.has(id)) deps.unload(id);
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'rule reload poll failed');
      } finally {
        polling = false;
      }
    },
  };
}
