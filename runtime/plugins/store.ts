/**
 * Stored plugin versions: their rows in the registry (the `plugins` table) and their module files in
 * `<data dir>/plugins/<id>/<version>.wasm`. The one place of the plugin host that touches Sequelize.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Model } from 'sequelize';
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

const rowOf = (m: Model): PluginVersion => {
  const o = m.get({ plain: true }) as Record<string, unknown>;
  return {
    id: o.id as string,
    version: Number(o.version),
    sha256: o.sha256 as string,
    size: Number(o.size),
    source: o.source as 'api' | 'dir',
    active: Boolean(o.active),
    created_at: o.created_at instanceof Date ? o.created_at.toISOString() : String(o.created_at),
    meta: o.meta as PluginMeta,
  };
};

export function createPluginStore(registry: Registry, dir: string): PluginStore {
  const Plugin = registry.models.Plugin;
  const fileOf = (id: string, version: number) => pathInside(dir, checkSlug('plugin', id), `${version}.wasm`);
  return {
    dir,
    async versionsOf(id) {
      return (await Plugin.findAll({ where: { id }, order: [['version', 'ASC']] })).map(rowOf);
    },
    async all() {
      return (await Plugin.findAll({ order: [['id', 'ASC'], ['version', 'ASC']] })).map(rowOf);
    },
    async activeVersions() {
      return (await Plugin.findAll({ where: { active: true } })).map(rowOf);
    },
    async add(v, bytes) {
      const file = fileOf(v.id, v.version);
      await fs.promises.mkdir(path.dirname(file), { recursive: true });
      await fs.promises.writeFile(file + '.tmp', bytes);
      await fs.promises.rename(file + '.tmp', file);
      return rowOf(await Plugin.create({ ...v, file, active: false, created_at: new Date() }));
    },
    async markActive(id, version) {
      // One statement, so it is atomic without a transaction: Sequelize gives a SQLite transaction a
      // second connection, whose lock waits block the event loop.
      await registry.sequelize.query('UPDATE plugins SET active = (version = :version) WHERE id = :id', {
        replacements: { id, version: version ?? -1 },
      });
    },
    async setMeta(id, version, meta) {
      await Plugin.update({ meta }, { where: { id, version } });
    },
    readModule: (id, version) => fs.promises.readFile(fileOf(id, version)),
    async remove(id) {
      const folder = pathInside(dir, checkSlug('plugin', id));
      await Plugin.destroy({ where: { id } });
      await fs.promises.rm(folder, { recursive: true, force: true });
    },
  };
}
