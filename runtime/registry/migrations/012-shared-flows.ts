/**
 * 012: the flows of a cluster (docs/cluster.md "Shared configuration"): one row, `id = 'flows'`, the
 * Node-RED flow JSON every node runs (NULL until a node of a cluster first stores its flows) and its
 * revision. Single-node FLUX keeps its flows in the data dir and leaves this row alone.
 */
import { DataTypes, type QueryInterface } from 'sequelize';

export const m012SharedFlows = {
  name: '012-shared-flows',
  async up(qi: QueryInterface): Promise<void> {
    const long = qi.sequelize.getDialect() === 'mysql' || qi.sequelize.getDialect() === 'mariadb' ? DataTypes.TEXT('long') : DataTypes.TEXT;
    await qi.createTable('shared_flows', {
      id: { type: DataTypes.STRING(32), primaryKey: true },
      flows: { type: long, allowNull: true },
      rev: { type: DataTypes.STRING(64), allowNull: true },
      updated_at: { type: DataTypes.DATE, allowNull: true },
    });
    await qi.bulkInsert('shared_flows', [{ id: 'flows', flows: null, rev: null, updated_at: null }]);
  },
  async down(qi: QueryInterface): Promise<void> {
    await qi.dropTable('shared_flows');
  },
};
