/**
 * 009: a rule whose script hit its limits repeatedly is quarantined (runtime/rules/engine.ts):
 * `quarantined_at` and `quarantine_reason` keep that across restarts; saving the rule clears them.
 */
import { DataTypes, type QueryInterface } from 'sequelize';

export const m009RuleQuarantine = {
  name: '009-rule-quarantine',
  async up(qi: QueryInterface): Promise<void> {
    await qi.addColumn('rules', 'quarantined_at', { type: DataTypes.DATE, allowNull: true });
    await qi.addColumn('rules', 'quarantine_reason', { type: DataTypes.TEXT, allowNull: true });
  },
  async down(qi: QueryInterface): Promise<void> {
    await qi.removeColumn('rules', 'quarantine_reason');
    await qi.removeColumn('rules', 'quarantined_at');
  },
};
