/** 006: devices get `transport`, their own transport settings (e.g. `{ modbus: { host, port, unit, mode } }`). */
import { DataTypes, type QueryInterface } from 'sequelize';

export const m006DeviceTransport = {
  name: '006-device-transport',
  async up(qi: QueryInterface): Promise<void> {
    await qi.addColumn('devices', 'transport', { type: DataTypes.TEXT, allowNull: true });
  },
  async down(qi: QueryInterface): Promise<void> {
    await qi.removeColumn('devices', 'transport');
  },
};
