/**
 * FLUX_PLUGINS_DIR: a `<id>.wasm` dropped there is installed (a new version, activated), a changed
 * one is a new version, a removed one is unloaded. Scanned at start, then watched.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Logger } from '../log/index.ts';
import { isSlug, pathInside, SLUG_PATTERN } from '../safe-id/index.ts';
import type { PluginStore } from './store.ts';
import type { Active, PluginHost } from './types.ts';

export interface PluginFolderDeps {
  dir: string;
  store: PluginStore;
  log: Logger;
  /** the live versions (a version from a file no longer there is unloaded) */
  active: ReadonlyMap<string, Active>;
  install: PluginHost['install'];
  deactivate(id: string): void;
  /** runs `fn` after every earlier operation on the same plugin id */
  locked<T>(id: string, fn: () => Promise<T>): Promise<T>;
}

export interface PluginFolder {
  scan(): Promise<void>;
  watch(): void;
  close(): void;
}

export function pluginFolder(deps: PluginFolderDeps): PluginFolder {
  const { dir: pluginsDir, store, log, active, install, deactivate, locked } = deps;
  let watcher: fs.FSWatcher | undefined;
  const debounce = new Map<string, NodeJS.Timeout>();

  /** A file of FLUX_PLUGINS_DIR appeared, changed or went away. */
  async function syncFile(name: string): Promise<void> {
    const id = name.slice(0, -'.wasm'.length);
    if (!isSlug(id)) {
      log.warn({ file: name.slice(0, 200) }, `ignored: a plugin file name must be <id>.wasm with id matching ${SLUG_PATTERN}`);
      return;
    }
    const file = pathInside(pluginsDir, name);
    let bytes: Buffer | undefined;
    try {
      bytes = await fs.promises.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (!bytes) {
      await locked(id, async () => {
        const current = (await store.versionsOf(id)).find((v) => v.active);
        if (current?.source === 'dir') {
          deactivate(id);
          await store.markActive(id, null);
          log.info({ plugin: id, file }, 'plugin file removed: unloaded');
        }
      });
      return;
    }
    const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
    // The registry is the truth across restarts: only content the folder has not shown us before is a new deploy.
    const lastFromDir = (await store.versionsOf(id)).filter((v) => v.source === 'dir').at(-1);
    if (lastFromDir?.sha256 === sha256) return;
    try {
      const { version, created } = await install(id, bytes, 'dir');
      log.info({ plugin: id, version: version.version, created, file }, 'plugin loaded from the plugins folder');
    } catch (err) {
      log.warn({ plugin: id, file, err: (err as Error).message }, 'plugin file refused');
    }
  }

  async function scanDir(): Promise<void> {
    let names: string[];
    try {
      names = (await fs.promises.readdir(pluginsDir)).filter((n) => n.endsWith('.wasm'));
    } catch (err) {
      log.warn({ dir: pluginsDir, err: (err as Error).message }, 'FLUX_PLUGINS_DIR cannot be read; no plugins from the folder');
      return;
    }
    for (const n of names) await syncFile(n);
    // Versions that came from a file no longer in the folder are unloaded, as a removal while running would.
    for (const [id] of active) {
      if (!names.includes(`${id}.wasm`)) {
        const current = (await store.versionsOf(id)).find((v) => v.active);
        if (current?.source === 'dir') await syncFile(`${id}.wasm`);
      }
    }
  }

  function watch(): void {
    try {
      watcher = fs.watch(pluginsDir, { persistent: false }, (_event, name) => {
        if (!name || !name.endsWith('.wasm')) return;
        clearTimeout(debounce.get(name));
        // Copying a file fires several events; act once it has been quiet for a moment.
        debounce.set(
          name,
          setTimeout(() => {
            debounce.delete(name);
            syncFile(name).catch((err) => log.error({ err, file: name }, 'plugin folder sync failed'));
          }, 150),
        );
      });
      watcher.on('error', (err) => log.error({ err, dir: pluginsDir }, 'watching FLUX_PLUGINS_DIR failed'));
    } catch (err) {
      log.warn({ dir: pluginsDir, err: (err as Error).message }, 'FLUX_PLUGINS_DIR cannot be watched; restart to pick up new files');
    }
  }

  return {
    scan: scanDir,
    watch,
    close() {
      watcher?.close();
      watcher = undefined;
      for (const t of debounce.values()) clearTimeout(t);
      debounce.clear();
    },
  };
}
