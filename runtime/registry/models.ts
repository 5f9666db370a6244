/**
 * Sequelize models of the registry: products, devices, rules, plugins, alarms, streams, users, API
 * tokens and the audit log. Columns are snake_case. Only the repositories in this folder use them.
 */
import { DataTypes, Model, type Sequelize, type ModelStatic } from 'sequelize';

/** JSON kept as TEXT: portable across SQLite, MariaDB (whose JSON is LONGTEXT) and PostgreSQL. */
export function jsonColumn(field: string, fallback: unknown, allowNull = false) {
  return {
    type: DataTypes.TEXT,
    allowNull,
    get(this: Model) {
      const raw = this.getDataValue(field) as string | null;
      if (raw === null || raw === undefined) return allowNull ? null : structuredClone(fallback);
      try {
        return JSON.parse(raw);
      } catch {
        return structuredClone(fallback);
      }
    },
    set(this: Model, v: unknown) {
      this.setDataValue(field, v === null || v === undefined ? (allowNull ? null : JSON.stringify(fallback)) : JSON.stringify(v));
    },
  };
}

export interface Models {
  Product: ModelStatic<Model>;
  Device: ModelStatic<Model>;
  Rule: ModelStatic<Model>;
  Plugin: ModelStatic<Model>;
  Alarm: ModelStatic<Model>;
  Stream: ModelStatic<Model>;
  User: ModelStatic<Model>;
  Token: ModelStatic<Model>;
  AuditEntry: ModelStatic<Model>;
}

/** up to 8 MiB of plugin module: LONGBLOB on MariaDB (a BLOB holds 64 KiB); PostgreSQL's BYTEA takes no length */
export const moduleBlob = (dialect: string) => (dialect === 'postgres' ? DataTypes.BLOB : DataTypes.BLOB('long'));

const common = { underscored: true, timestamps: true, createdAt: 'created_at', updatedAt: 'updated_at' } as const;

export function defineModels(sequelize: Sequelize): Models {
  const Product = sequelize.define(
    'Product',
    {
      id: { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 },
      key: { type: DataTypes.STRING(64), allowNull: false, unique: true },
      name: { type: DataTypes.STRING(200), allowNull: false },
      description: { type: DataTypes.STRING(1000), allowNull: true },
      protocol_plugin_id: { type: DataTypes.STRING(64), allowNull: true },
      metadata: jsonColumn('metadata', {}),
      transport: jsonColumn('transport', {}),
      auto_register_children: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false }, // migration 004
      child_product_id: { type: DataTypes.UUID, allowNull: true }, // migration 004
    },
    { ...common, tableName: 'products' },
  );
  const Device = sequelize.define(
    'Device',
    {
      id: { type: DataTypes.STRING(64), primaryKey: true },
      product_id: { type: DataTypes.UUID, allowNull: false },
      name: { type: DataTypes.STRING(200), allowNull: false },
      secret_hash: { type: DataTypes.STRING(200), allowNull: false },
      enabled: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
      status: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'offline' },
      last_online: { type: DataTypes.DATE, allowNull: true },
      tags: jsonColumn('tags', {}),
      is_gateway: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false }, // migration 004
      gateway_id: { type: DataTypes.STRING(64), allowNull: true }, // migration 004
      transport: jsonColumn('transport', {}, true), // migration 006
    },
    { ...common, tableName: 'devices' },
  );
  const Rule = sequelize.define(
    'Rule',
    {
      id: { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 },
      name: { type: DataTypes.STRING(200), allowNull: false },
      enabled: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
      trigger_script: { type: DataTypes.TEXT, allowNull: false },
      action_type: { type: DataTypes.STRING(32), allowNull: false },
      action_config: jsonColumn('action_config', {}),
      product_id: { type: DataTypes.UUID, allowNull: true },
      device_id: { type: DataTypes.STRING(64), allowNull: true },
      version: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 1 },
      env: jsonColumn('env', {}, true), // migration 003
      quarantined_at: { type: DataTypes.DATE, allowNull: true }, // migration 009
      quarantine_reason: { type: DataTypes.TEXT, allowNull: true }, // migration 009
    },
    { ...common, tableName: 'rules' },
  );
  const Plugin = sequelize.define(
    'Plugin',
    {
      id: { type: DataTypes.STRING(64), primaryKey: true },
      version: { type: DataTypes.INTEGER, primaryKey: true },
      sha256: { type: DataTypes.STRING(64), allowNull: false },
      file: { type: DataTypes.STRING(500), allowNull: false },
      size: { type: DataTypes.INTEGER, allowNull: false },
      meta: jsonColumn('meta', {}),
      active: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
      source: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'api' },
      module: { type: moduleBlob(sequelize.getDialect()), allowNull: true }, // migration 011
    },
    // the module bytes (up to 8 MiB each) are read one version at a time, never with a listing
    { ...common, updatedAt: false, tableName: 'plugins', defaultScope: { attributes: { exclude: ['module'] } } },
  );
  const Alarm = sequelize.define(
    'Alarm',
    {
      id: { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 },
      rule_id: { type: DataTypes.UUID, allowNull: true },
      device_id: { type: DataTypes.STRING(64), allowNull: true },
      level: { type: DataTypes.STRING(16), allowNull: false },
      state: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'active' },
      message: { type: DataTypes.STRING(1000), allowNull: false, defaultValue: '' },
      count: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 1 },
      first_at: { type: DataTypes.DATE, allowNull: false },
      last_at: { type: DataTypes.DATE, allowNull: false },
      acked_at: { type: DataTypes.DATE, allowNull: true },
      acked_by: { type: DataTypes.STRING(64), allowNull: true }, // migration 005
      ack_note: { type: DataTypes.STRING(1000), allowNull: true }, // migration 005
      cleared_at: { type: DataTypes.DATE, allowNull: true },
      /** `<rule id>/<device id>` while the alarm is open, null once cleared: unique, so one open alarm per pair (migration 010) */
      open_key: { type: DataTypes.STRING(128), allowNull: true },
    },
    { ...common, tableName: 'alarms' },
  );
  const Stream = sequelize.define(
    'Stream',
    {
      id: { type: DataTypes.STRING(64), primaryKey: true },
      name: { type: DataTypes.STRING(200), allowNull: false },
      /** the RTSP URL without its credentials (what the API shows) */
      url: { type: DataTypes.STRING(2000), allowNull: false },
      /** the full RTSP and RTMP URLs, encrypted (runtime/stream/secrets.ts) */
      secrets: { type: DataTypes.TEXT, allowNull: false },
      device_id: { type: DataTypes.STRING(64), allowNull: true },
      on_demand: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
      record: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
      retention_hours: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 24 },
      transcode: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'copy' },
      audio: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'copy' },
      /** the push targets without credentials or stream keys */
      rtmp_push: jsonColumn('rtmp_push', []),
      tags: jsonColumn('tags', {}),
    },
    { ...common, tableName: 'streams' },
  ); // migration 007
  const User = sequelize.define(
    'User',
    {
      id: { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 },
      username: { type: DataTypes.STRING(64), allowNull: false, unique: true },
      password_hash: { type: DataTypes.STRING(200), allowNull: false },
      role: { type: DataTypes.STRING(16), allowNull: false },
      last_login_at: { type: DataTypes.DATE, allowNull: true },
    },
    { ...common, tableName: 'users' },
  ); // migration 005
  const Token = sequelize.define(
    'ApiToken',
    {
      id: { type: DataTypes.UUID, primaryKey: true, defaultValue: DataTypes.UUIDV4 },
      kind: { type: DataTypes.STRING(16), allowNull: false },
      token_hash: { type: DataTypes.STRING(64), allowNull: false, unique: true },
      name: { type: DataTypes.STRING(100), allowNull: true },
      role: { type: DataTypes.STRING(16), allowNull: false },
      username: { type: DataTypes.STRING(64), allowNull: true },
      expires_at: { type: DataTypes.DATE, allowNull: true },
      last_used_at: { type: DataTypes.DATE, allowNull: true },
      revoked_at: { type: DataTypes.DATE, allowNull: true },
    },
    { ...common, updatedAt: false, tableName: 'api_tokens' },
  ); // migration 005
  const AuditEntry = sequelize.define(
    'AuditEntry',
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      at: { type: DataTypes.DATE, allowNull: false },
      username: { type: DataTypes.STRING(64), allowNull: true },
      role: { type: DataTypes.STRING(16), allowNull: true },
      action: { type: DataTypes.STRING(100), allowNull: false },
      target: { type: DataTypes.STRING(500), allowNull: true },
      status: { type: DataTypes.INTEGER, allowNull: true },
      address: { type: DataTypes.STRING(64), allowNull: true },
      detail: { type: DataTypes.STRING(1000), allowNull: true },
    },
    { tableName: 'audit_log', timestamps: false },
  ); // migration 005
  return { Product, Device, Rule, Plugin, Alarm, Stream, User, Token, AuditEntry };
}
