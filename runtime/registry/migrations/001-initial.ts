/** 001: products, devices, rules, plugins, alarms. */
import { DataTypes, type QueryInterface } from 'sequelize';

const timestamps = {
  created_at: { type: DataTypes.DATE, allowNull: false },
  updated_at: { type: DataTypes.DATE, allowNull: false },
};

export const m001Initial = {
  name: '001-initial',
  async up(qi: QueryInterface): Promise<void> {
    await qi.createTable('products', {
      id: { type: DataTypes.UUID, primaryKey: true },
      key: { type: DataTypes.STRING(64), allowNull: false, unique: true },
      name: { type: DataTypes.STRING(200), allowNull: false },
      description: { type: DataTypes.STRING(1000), allowNull: true },
      protocol_plugin_id: { type: DataTypes.STRING(64), allowNull: true },
      metadata: { type: DataTypes.TEXT, allowNull: false },
      transport: { type: DataTypes.TEXT, allowNull: false },
      ...timestamps,
    });
    await qi.createTable('devices', {
      id: { type: DataTypes.STRING(64), primaryKey: true },
      product_id: { type: DataTypes.UUID, allowNull: false, references: { model: 'products', key: 'id' }, onDelete: 'RESTRICT', onUpdate: 'CASCADE' },
      name: { type: DataTypes.STRING(200), allowNull: false },
      secret_hash: { type: DataTypes.STRING(200), allowNull: false },
      enabled: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
      status: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'offline' },
      last_online: { type: DataTypes.DATE, allowNull: true },
      tags: { type: DataTypes.TEXT, allowNull: false },
      ...timestamps,
    });
    await qi.addIndex('devices', ['product_id'], { name: 'devices_product_id' });
    await qi.createTable('rules', {
      id: { type: DataTypes.UUID, primaryKey: true },
      name: { type: DataTypes.STRING(200), allowNull: false },
      enabled: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
      trigger_script: { type: DataTypes.TEXT, allowNull: false },
      action_type: { type: DataTypes.STRING(32), allowNull: false },
      action_config: { type: DataTypes.TEXT, allowNull: false },
      product_id: { type: DataTypes.UUID, allowNull: true },
      device_id: { type: DataTypes.STRING(64), allowNull: true },
      version: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 1 },
      ...timestamps,
    });
    await qi.createTable('plugins', {
      id: { type: DataTypes.STRING(64), primaryKey: true },
      version: { type: DataTypes.INTEGER, primaryKey: true },
      sha256: { type: DataTypes.STRING(64), allowNull: false },
      file: { type: DataTypes.STRING(500), allowNull: false },
      size: { type: DataTypes.INTEGER, allowNull: false },
      meta: { type: DataTypes.TEXT, allowNull: false },
      active: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
      source: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'api' },
      created_at: { type: DataTypes.DATE, allowNull: false },
    });
    await qi.createTable('alarms', {
      id: { type: DataTypes.UUID, primaryKey: true },
      rule_id: { type: DataTypes.UUID, allowNull: true },
      device_id: { type: DataTypes.STRING(64), allowNull: true },
      level: { type: DataTypes.STRING(16), allowNull: false },
      state: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'active' },
      message: { type: DataTypes.STRING(1000), allowNull: false, defaultValue: '' },
      count: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 1 },
      first_at: { type: DataTypes.DATE, allowNull: false },
      last_at: { type: DataTypes.DATE, allowNull: false },
      acked_at: { type: DataTypes.DATE, allowNull: true },
      cleared_at: { type: DataTypes.DATE, allowNull: true },
      ...timestamps,
    });
    await qi.addIndex('alarms', ['state', 'last_at'], { name: 'alarms_state_last_at' });
    await qi.addIndex('alarms', ['rule_id', 'device_id', 'state'], { name: 'alarms_rule_device_state' });
  },
  async down(qi: QueryInterface): Promise<void> {
    for (const t of ['alarms', 'plugins', 'rules', 'devices', 'products']) await qi.dropTable(t);
  },
};
