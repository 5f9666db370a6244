/** 007: camera streams. RTSP and RTMP URLs with their credentials are kept only encrypted (`secrets`). */
import { DataTypes, type QueryInterface } from 'sequelize';

export const m007Streams = {
  name: '007-streams',
  async up(qi: QueryInterface): Promise<void> {
    await qi.createTable('streams', {
      id: { type: DataTypes.STRING(64), primaryKey: true },
      name: { type: DataTypes.STRING(200), allowNull: false },
      url: { type: DataTypes.STRING(2000), allowNull: false },
      secrets: { type: DataTypes.TEXT, allowNull: false },
      device_id: { type: DataTypes.STRING(64), allowNull: true },
      on_demand: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
      record: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
      retention_hours: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 24 },
      transcode: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'copy' },
      audio: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'copy' },
      rtmp_push: { type: DataTypes.TEXT, allowNull: false },
      tags: { type: DataTypes.TEXT, allowNull: false },
      created_at: { type: DataTypes.DATE, allowNull: false },
      updated_at: { type: DataTypes.DATE, allowNull: false },
    });
    await qi.addIndex('streams', ['device_id'], { name: 'streams_device_id' });
  },
  async down(qi: QueryInterface): Promise<void> {
    await qi.dropTable('streams');
  },
};
