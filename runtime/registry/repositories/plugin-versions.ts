/**
 * The plugin versions repository: one row per stored version of a protocol plugin (its module file
 * lives in the data dir, runtime/plugins/store.ts, and its bytes in the row too since migration 011,
 * for the other nodes of a cluster). test/registry/plugin-versions.test.ts runs it on
 * SQLite, MariaDB and PostgreSQL.
 */
import type { Model } from 'sequelize';
import type { Db } from '../rows.ts';

/** A stored version as the registry keeps it; `meta` is the plugin host's (runtime/plugins). */
export interface PluginVersionRow<Meta = unknown> {
  id: string;
  version: number;
  sha256: string;
  size: number;
  source: 'api' | 'dir';
  active: boolean;
  created_at: string;
  meta: Meta;
}

export interface PluginVersions {
  /** every version of `id`, oldest first */
  of(id: string): Promise<PluginVersionRow[]>;
  /** every version of every plugin, by id then version */
  all(): Promise<PluginVersionRow[]>;
  /** the versions marked active */
  active(): Promise<PluginVersionRow[]>;
  /** a new, inactive version; `file` is where its module is, `module` its bytes */
  add(row: Omit<PluginVersionRow, 'active' | 'created_at'> & { file: string; module: Uint8Array }): Promise<PluginVersionRow>;
  /** the stored bytes of a version (null: none, a version stored before migration 011, or no such version) */
  moduleOf(id: string, version: number): Promise<Buffer | null>;
  /** Marks `version` active and every other version of `id` inactive (null: none), in one statement. */
  markActive(id: string, version: number | null): Promise<void>;
  setMeta(id: string, version: number, meta: unknown): Promise<void>;
  /** Deletes every version of `id`. */
  remove(id: string): Promise<void>;
}

const rowOf = (m: Model): PluginVersionRow => {
  const o = m.get({ plain: true }) as Record<string, unknown>;
  return {
    id: o.id as string,
    version: Number(o.version),
    sha256: o.sha256 as string,
    size: Number(o.size),
    source: o.source as 'api' | 'dir',
    active: Boolean(o.active),
    created_at: o.created_at instanceof Date ? o.created_at.toISOString() : String(o.created_at),
    meta: o.meta,
  };
};

export function createPluginVersionRepository(db: Db): PluginVersions {
  const { Plugin } = db.models;
  return {
    async of(id) {
      return (await Plugin.findAll({ where: { id }, order: [['version', 'ASC']] })).map(rowOf);
    },
    async all() {
      return (await Plugin.findAll({ order: [['id', 'ASC'], ['version', 'ASC']] })).map(rowOf);
    },
    async active() {
      return (await Plugin.findAll({ where: { active: true }, order: [['id', 'ASC']] })).map(rowOf);
    },
    async add(row) {
      return rowOf(await Plugin.create({ ...row, module: Buffer.from(row.module), active: false, created_at: new Date() }));
    },
    async moduleOf(id, version) {
      const m = await Plugin.unscoped().findOne({ attributes: ['module'], where: { id, version } });
      const bytes = m?.get('module') as Buffer | null | undefined;
      return bytes ? Buffer.from(bytes) : null;
    },
    async markActive(id, version) {
      // One statement, so it is atomic without a transaction: Sequelize gives a SQLite transaction a
      // second connection, whose lock waits block the event loop.
      await db.sequelize.query('UPDATE plugins SET active = (version = :version) WHERE id = :id', { replacements: { id, version: version ?? -1 } });
    },
    async setMeta(id, version, meta) {
      await Plugin.update({ meta }, { where: { id, version } });
    },
    async remove(id) {
      await Plugin.destroy({ where: { id } });
    },
  };
}
