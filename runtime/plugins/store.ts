/**
 * Stored plugin versions: their rows in the registry (`registry.pluginVersions`) and their module
 * files in `<data dir>/plugins/<id>/<version>.wasm`. The row holds the bytes too (migration 011): a
 * node of a cluster that lacks the file (the version was installed on another node, each node has
 * its own data dir) reads them from the shared database and writes its file then.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Registry } from '../registry/index.ts';
import { checkSlug, pathInside } from '../safe-id/index.ts';
import type { PluginMeta, PluginVersion } from './types.ts';

export interface PluginStore {
  readonly dir: string;
  /** every version of `id`, oldest first */
  versionsOf(id: string): Promise<PluginVersion[]>;
  /** every version of every plugin, by id then version */
  all(): Promise<PluginVersion[]>;
  /** the versions marked active (what a start loads) */
  activeVersions(): Promise<PluginVersion[]>;
  /** Writes the module file (atomically) and its row, inactive. */
  add(v: Omit<PluginVersion, 'active' | 'created_at'>, bytes: Uint8Array): Promise<PluginVersion>;
  /** Marks `version` active and every other version of `id` inactive (null: none). */
  markActive(id: string, version: number | null): Promise<void>;
  setMeta(id: string, version: number, meta: PluginMeta): Promise<void>;
  readModule(id: string, version: number): Promise<Buffer>;
  /** Deletes every row and file of `id`. */
  remove(id: string): Promise<void>;
}

export function createPluginStore(registry: Registry, dir: string): PluginStore {
  const rows = registry.pluginVersions;
  const fileOf = (id: string, version: number) => pathInside(dir, checkSlug('plugin', id), `${version}.wasm`);
  // the registry keeps `meta` as the host wrote it
  const typed = (list: Awaited<ReturnType<typeof rows.all>>) => list as PluginVersion[];
  return {
    dir,
    versionsOf: async (id) => typed(await rows.of(id)),
    all: async () => typed(await rows.all()),
    activeVersions: async () => typed(await rows.active()),
    async add(v, bytes) {
      const file = fileOf(v.id, v.version);
      await fs.promises.mkdir(path.dirname(file), { recursive: true });
      await fs.promises.writeFile(file + '.tmp', bytes);
      await fs.promises.rename(file + '.tmp', file);
      return (await rows.add({ ...v, file, module: bytes })) as PluginVersion;
    },
    markActive: (id, version) => rows.markActive(id, version),
    setMeta: (id, version, meta) => rows.setMeta(id, version, meta),
    async readModule(id, version) {
      const file = fileOf(id, version);
      try {
        return await fs.promises.readFile(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      const bytes = await rows.moduleOf(id, version);
      if (!bytes) throw new Error(`the module of ${id}@${version} is neither in ${file} nor in the database`);
      await fs.promises.mkdir(path.dirname(file), { recursive: true });
      await fs.promises.writeFile(file + '.tmp', bytes);
      await fs.promises.rename(file + '.tmp', file);
      return bytes;
    },
    async remove(id) {
      const folder = pathInside(dir, checkSlug('plugin', id));
      await rows.remove(id);
      await fs.promises.rm(folder, { recursive: true, force: true });
    },
  };
}
