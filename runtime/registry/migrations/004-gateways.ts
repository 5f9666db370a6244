/**
 * 004: gateways and their child devices. `devices.is_gateway` marks a device that may speak for
 * others; `devices.gateway_id` names the gateway a child reports through (checked by the registry:
 * an existing gateway device, no cycles). Products get `auto_register_children` (off by default) and
 * `child_product_id`, the product of children created on a gateway's first report for them.
 * `gateway_id` is an indexed column without a database foreign key: SQLite cannot add one to an
 * existing table without rebuilding it, and the registry checks the reference on every write.
 */
import { DataTypes, type QueryInterface } from 'sequelize';

export const m004Gateways = {
  name: '004-gateways',
  async up(qi: QueryInterface): Promise<void> {
    await qi.addColumn('devices', 'is_gateway', { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false });
    await qi.addColumn('devices', 'gateway_id', { type: DataTypes.STRING(64), allowNull: true });
    await qi.addIndex('devices', ['gateway_id'], { name: 'devices_gateway_id' });
    await qi.addColumn('products', 'auto_register_children', { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false });
    await qi.addColumn('products', 'child_product_id', { type: DataTypes.UUID, allowNull: true });
  },
  async down(qi: QueryInterface): Promise<void> {
    await qi.removeColumn('products', 'child_product_id');
    await qi.removeColumn('products', 'auto_register_children');
    await qi.removeIndex('devices', 'devices_gateway_id');
    await qi.removeColumn('devices', 'gateway_id');
    await qi.removeColumn('devices', 'is_gateway');
  },
};
