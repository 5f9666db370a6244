/** 003: rules get `env`, the read-only settings their script sees as `env`. */
import { DataTypes, type QueryInterface } from 'sequelize';

export const m003Rules = {
  name: '003-rules',
  async up(qi: QueryInterface): Promise<void> {
    await qi.addColumn('rules', 'env', { type: DataTypes.TEXT, allowNull: true });
  },
  async down(qi: QueryInterface): Promise<void> {
    await qi.removeColumn('rules', 'env');
  },
};
