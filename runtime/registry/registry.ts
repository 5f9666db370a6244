/**
 * The registry: one database (SQLite, MySQL/MariaDB or PostgreSQL), migrated on start, behind one
 * repository per kind of row. The connection and the models stay in this folder; everything else
 * sees the repositories' interfaces only (test/registry/boundary.test.ts checks that no file outside
 * runtime/registry/ imports Sequelize).
 */
import type { DbUrl } from '../../settings.ts';
import type { Logger } from '../log/index.ts';
import { defineModels } from './models.ts';
import { appliedMigrations, connectAndMigrate, openSequelize } from './connection.ts';
import { createGatewayTopology } from './gateways.ts';
import { createIdentityCache, type IdentityCache } from './identities.ts';
import type { Db } from './rows.ts';
import { createProductRepository, type ProductRepository } from './repositories/products.ts';
import { createDeviceRepository, type DeviceRepository } from './repositories/devices.ts';
import { createPluginVersionRepository, type PluginVersions } from './repositories/plugin-versions.ts';
import { createRuleRepository, type RuleRepository } from './repositories/rules.ts';
import { createAlarmRepository, type AlarmRepository } from './repositories/alarms.ts';
import { createStreamRepository, type StreamRepository } from './repositories/streams.ts';
import { createTokenRepository, createUserRepository, type TokenRepository, type UserRepository } from './repositories/accounts.ts';
import { createAuditRepository, type AuditRepository } from './repositories/audit.ts';
import { createSharedFlowRepository, type SharedFlowRepository } from './repositories/shared-flows.ts';

export interface RegistryHealth {
  ok: boolean;
  [detail: string]: unknown;
  dialect: string;
  latency_ms?: number;
  error?: string;
}

export interface Registry {
  readonly dialect: DbUrl['dialect'];
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): Promise<RegistryHealth>;
  /** the names of the schema migrations this database has run */
  migrations(): Promise<string[]>;
  products: ProductRepository;
  devices: DeviceRepository;
  /** Stored versions of protocol plugins (rows; their files are the plugin host's). */
  pluginVersions: PluginVersions;
  rules: RuleRepository;
  alarms: AlarmRepository;
  streams: StreamRepository;
  users: UserRepository;
  /** login sessions and personal API tokens */
  tokens: TokenRepository;
  audit: AuditRepository;
  /** the flows of a cluster's nodes (single-node FLUX keeps them in its data dir) */
  sharedFlows: SharedFlowRepository;
  /** Drops cached identities (after an update made elsewhere, e.g. another node). */
  invalidate(deviceId?: string): void;
  /** Drops a cached product and the identities holding it (after an update made by another node). */
  invalidateProduct(productId: string): void;
}

/** What a registry write changed, for the caches of a cluster's other nodes (no id: every device). */
export type RegistryChange = { kind: 'device'; id?: string } | { kind: 'product'; id: string };

export interface RegistryOptions {
  db: DbUrl;
  log: Logger;
  /** Sequelize pool size for MySQL/PostgreSQL (SQLite always uses one connection). */
  poolMax?: number;
  /** how long a cached device identity counts as fresh (default 30 s; see devices.cachedIdentity) */
  identityTtlMs?: number;
  /** called with every SQL statement sent (tracing; tests count reads with it) */
  onQuery?: (sql: string) => void;
  /** run the migrations up to this one only (tests of upgrades from an older schema) */
  migrateUntil?: string;
  /** called after each write that drops cached identities (cluster mode tells the other nodes) */
  onChange?: (change: RegistryChange) => void;
}

export function createRegistry(opts: RegistryOptions): Registry {
  const { log } = opts;
  const sequelize = openSequelize(opts.db, opts);
  const db: Db = { sequelize, models: defineModels(sequelize), dialect: opts.db.dialect };
  const ttlMs = opts.identityTtlMs ?? 30_000;

  const identities = createIdentityCache(db, ttlMs, log);
  // The repositories drop cached identities after each write of theirs: the same moments tell the
  // other nodes of a cluster (`invalidate*` below, called for their notices, do not tell again).
  const onChange = opts.onChange;
  const written: IdentityCache = onChange
    ? {
        ...identities,
        forget(id) {
          identities.forget(id);
          onChange({ kind: 'device', id });
        },
        forgetProduct(productId) {
          identities.forgetProduct(productId);
          onChange({ kind: 'product', id: productId });
        },
      }
    : identities;
  const gateways = createGatewayTopology({
    Device: db.models.Device,
    ttlMs,
    onRefreshError: (gatewayId, err) => log.warn({ gatewayId, err: err.message }, 'refreshing the children of a gateway failed'),
  });
  const products = createProductRepository(db, (productId) => written.forgetProduct(productId));

  return {
    dialect: opts.db.dialect,
    products,
    devices: createDeviceRepository(db, products, written, gateways),
    pluginVersions: createPluginVersionRepository(db),
    rules: createRuleRepository(db),
    alarms: createAlarmRepository(db),
    streams: createStreamRepository(db),
    users: createUserRepository(db),
    tokens: createTokenRepository(db),
    audit: createAuditRepository(db),
    sharedFlows: createSharedFlowRepository(db),
    invalidate(deviceId) {
      if (deviceId) identities.forget(deviceId);
      else identities.clear();
      gateways.forget();
    },
    invalidateProduct(productId) {
      identities.forgetProduct(productId);
      gateways.forget();
    },
    start: () => connectAndMigrate(sequelize, opts.db, log, opts.migrateUntil),
    async stop() {
      identities.clear();
      gateways.forget();
      await sequelize.close();
    },
    migrations: () => appliedMigrations(sequelize),
    async health() {
      const t0 = performance.now();
      try {
        await sequelize.query('SELECT 1');
        return { ok: true, dialect: opts.db.dialect, latency_ms: Math.round((performance.now() - t0) * 100) / 100 };
      } catch (err) {
        return { ok: false, dialect: opts.db.dialect, error: (err as Error).message };
      }
    },
  };
}
