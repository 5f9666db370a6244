/**
 * 005: users and roles (runtime/users): `users` with scrypt password hashes, `api_tokens` (login
 * sessions and personal tokens, only their SHA-256 kept), the `audit_log`, and who acknowledged an
 * alarm with which note.
 */
import { DataTypes, type QueryInterface } from 'sequelize';

export const m005Users = {
  name: '005-users',
  async up(qi: QueryInterface): Promise<void> {
    await qi.createTable('users', {
      id: { type: DataTypes.UUID, primaryKey: true },
      username: { type: DataTypes.STRING(64), allowNull: false, unique: true },
      password_hash: { type: DataTypes.STRING(200), allowNull: false },
      role: { type: DataTypes.STRING(16), allowNull: false },
      last_login_at: { type: DataTypes.DATE, allowNull: true },
      created_at: { type: DataTypes.DATE, allowNull: false },
      updated_at: { type: DataTypes.DATE, allowNull: false },
    });
    await qi.createTable('api_tokens', {
      id: { type: DataTypes.UUID, primaryKey: true },
      kind: { type: DataTypes.STRING(16), allowNull: false },
      token_hash: { type: DataTypes.STRING(64), allowNull: false, unique: true },
      name: { type: DataTypes.STRING(100), allowNull: true },
      role: { type: DataTypes.STRING(16), allowNull: false },
      username: { type: DataTypes.STRING(64), allowNull: true },
      expires_at: { type: DataTypes.DATE, allowNull: true },
      last_used_at: { type: DataTypes.DATE, allowNull: true },
      revoked_at: { type: DataTypes.DATE, allowNull: true },
      created_at: { type: DataTypes.DATE, allowNull: false },
    });
    await qi.addIndex('api_tokens', ['username'], { name: 'api_tokens_username' });
    await qi.createTable('audit_log', {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      at: { type: DataTypes.DATE, allowNull: false },
      username: { type: DataTypes.STRING(64), allowNull: true },
      role: { type: DataTypes.STRING(16), allowNull: true },
      action: { type: DataTypes.STRING(100), allowNull: false },
      target: { type: DataTypes.STRING(500), allowNull: true },
      status: { type: DataTypes.INTEGER, allowNull: true },
      address: { type: DataTypes.STRING(64), allowNull: true },
      detail: { type: DataTypes.STRING(1000), allowNull: true },
    });
    await qi.addIndex('audit_log', ['at'], { name: 'audit_log_at' });
    await qi.addColumn('alarms', 'acked_by', { type: DataTypes.STRING(64), allowNull: true });
    await qi.addColumn('alarms', 'ack_note', { type: DataTypes.STRING(1000), allowNull: true });
  },
  async down(qi: QueryInterface): Promise<void> {
    await qi.removeColumn('alarms', 'ack_note');
    await qi.removeColumn('alarms', 'acked_by');
    await qi.dropTable('audit_log');
    await qi.dropTable('api_tokens');
    await qi.dropTable('users');
  },
};
