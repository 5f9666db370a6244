/**
 * @module registry — metadata (products, devices, plugin versions, rules, alarms, streams, users,
 * tokens, the audit log) in SQLite, MySQL/MariaDB or PostgreSQL through Sequelize, with versioned
 * migrations run on start. Each kind of row sits behind a repository interface; Sequelize never
 * leaves this folder.
 */
export { createRegistry, type Registry, type RegistryOptions, type RegistryHealth, type RegistryChange } from './registry.ts';
export type { Page, ListOptions } from './rows.ts';
export { PRODUCT_KEY_PATTERN, type ProductRepository, type Product, type ProductInput, type ThingModel } from './repositories/products.ts';
export { DEVICE_ID_PATTERN, type DeviceRepository, type Device, type DeviceAccess, type DeviceIdentity, type DeviceInput, type DevicePatch } from './repositories/devices.ts';
export type { PluginVersions, PluginVersionRow } from './repositories/plugin-versions.ts';
export type { RuleRepository, RuleRow, RuleColumns } from './repositories/rules.ts';
export type { AlarmRepository, Alarm, AlarmLevel, AlarmState, AlarmFilter, AlarmChange } from './repositories/alarms.ts';
export type { StreamRepository, StreamRow, StreamColumns } from './repositories/streams.ts';
export type { UserRepository, UserRow, TokenRepository, TokenRow, TokenKind } from './repositories/accounts.ts';
export type { AuditRepository, AuditRow } from './repositories/audit.ts';
export type { SharedFlowRepository } from './repositories/shared-flows.ts';
export { generateSecret, hashSecret, verifySecret } from './secrets.ts';
export { MAX_GATEWAY_DEPTH } from './gateways.ts';
