/**
 * 011: a plugin version's module bytes in the database (`plugins.module`), beside its file in the
 * data dir. Nodes of a cluster (docs/cluster.md) each keep their own data dir but share this table,
 * so a version installed on one node can be loaded on every other (runtime/plugins/store.ts).
 * Versions stored before have no bytes here (NULL): they load from their file only. LONGBLOB on
 * MariaDB (a BLOB holds 64 KiB); PostgreSQL's BYTEA takes no length.
 */
import { DataTypes, type QueryInterface } from 'sequelize';

export const m011PluginModules = {
  name: '011-plugin-modules',
  async up(qi: QueryInterface): Promise<void> {
    await qi.addColumn('plugins', 'module', { type: qi.sequelize.getDialect() === 'postgres' ? DataTypes.BLOB : DataTypes.BLOB('long'), allowNull: true });
  },
  async down(qi: QueryInterface): Promise<void> {
    await qi.removeColumn('plugins', 'module');
  },
};
