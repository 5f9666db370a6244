/**
 * 013: the flows' credentials of a cluster (docs/cluster.md "Flows"): Node-RED's encrypted
 * credentials document (`{"$": "…"}`, encrypted with FLUX_CREDENTIAL_SECRET) beside the flows in the
 * `shared_flows` row, so that a deploy on one node gives every node the same credentials. NULL until
 * a node of a cluster stores them; single-node FLUX keeps them in its data dir.
 */
import { DataTypes, type QueryInterface } from 'sequelize';

export const m013SharedFlowCredentials = {
  name: '013-shared-flow-credentials',
  async up(qi: QueryInterface): Promise<void> {
    const long = qi.sequelize.getDialect() === 'mysql' || qi.sequelize.getDialect() === 'mariadb' ? DataTypes.TEXT('long') : DataTypes.TEXT;
    await qi.addColumn('shared_flows', 'credentials', { type: long, allowNull: true });
  },
  async down(qi: QueryInterface): Promise<void> {
    await qi.removeColumn('shared_flows', 'credentials');
  },
};
