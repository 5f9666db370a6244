/**
 * @module registry — metadata (products, devices, rules, plugins, alarms) in SQLite, MySQL/MariaDB
 * or PostgreSQL through Sequelize, with versioned migrations run on start.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Sequelize, Op, QueryTypes, UniqueConstraintError, ForeignKeyConstraintError, type Model, type WhereOptions } from 'sequelize';
import { Umzug, SequelizeStorage } from 'umzug';
import type { DbUrl } from '../../settings.ts';
import { redact } from '../../settings.ts';
import { ConfigError, FluxError, conflict, notFound } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { sqliteDialectModule } from './sqlite-adapter.ts';
import { defineModels, type Models } from './models.ts';
import { MIGRATIONS } from './migrations/index.ts';
import { generateSecret, hashSecret, verifySecret } from './secrets.ts';
import { createGatewayTopology } from './gateways.ts';
import { pluginVersions, type PluginVersions } from './plugin-versions.ts';

export { jsonColumn } from './models.ts';
export type { Models } from './models.ts';
export { generateSecret, hashSecret, verifySecret } from './secrets.ts';
export { MAX_GATEWAY_DEPTH } from './gateways.ts';
export type { PluginVersions, PluginVersionRow } from './plugin-versions.ts';

export interface Product {
  id: string;
  key: string;
  name: string;
  description: string | null;
  protocol_plugin_id: string | null;
  /** the thing model (TSL): `{ properties: [{ id, type, unit? }], events: [...], commands: [...] }` */
  metadata: ThingModel;
  /** transport settings, e.g. `{ tcp: { port, framing } }` */
  transport: Record<string, unknown>;
  /** a gateway of this product reporting for an unknown device id creates it as its child (off by default) */
  auto_register_children: boolean;
  /** the product of children created that way (null: the gateway's own product) */
  child_product_id: string | null;
  created_at: string;
  updated_at: string;
}

export interface ThingModel {
  properties?: { id: string; name?: string; type: 'int' | 'float' | 'double' | 'bool' | 'string' | 'enum' | 'number'; unit?: string; [k: string]: unknown }[];
  events?: { id: string; name?: string; [k: string]: unknown }[];
  commands?: { id: string; name?: string; params?: unknown[]; [k: string]: unknown }[];
  [k: string]: unknown;
}

export interface Device {
  id: string;
  product_id: string;
  name: string;
  enabled: boolean;
  status: 'online' | 'offline';
  last_online: string | null;
  tags: Record<string, unknown>;
  /** may report and receive commands for its children (devices whose gateway_id names it) */
  is_gateway: boolean;
  /** the gateway this device reports through, or null */
  gateway_id: string | null;
  /** the device's own transport settings, e.g. `{ modbus: { host, port, unit, mode } }`; null when none */
  transport: Record<string, unknown> | null;
  created_at: string;
  updated_at: string;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface ProductInput {
  key: string;
  name: string;
  description?: string | null;
  protocol_plugin_id?: string | null;
  metadata?: ThingModel;
  transport?: Record<string, unknown>;
  auto_register_children?: boolean;
  child_product_id?: string | null;
}

export interface DeviceInput {
  id?: string;
  product_id: string;
  name?: string;
  secret?: string;
  enabled?: boolean;
  tags?: Record<string, unknown>;
  is_gateway?: boolean;
  gateway_id?: string | null;
  transport?: Record<string, unknown> | null;
}

export interface DevicePatch {
  name?: string;
  enabled?: boolean;
  tags?: Record<string, unknown>;
  is_gateway?: boolean;
  /** a gateway's id attaches the device to it, null detaches it */
  gateway_id?: string | null;
  transport?: Record<string, unknown> | null;
}

export interface ListOptions {
  limit?: number;
  offset?: number;
}

export interface RegistryHealth {
  ok: boolean;
  [detail: string]: unknown;
  dialect: string;
  latency_ms?: number;
  error?: string;
}

/** A verified device with its product, as the broker and ingress need it. */
export interface DeviceIdentity {
  device: Device;
  product: Product;
}

export interface Registry {
  readonly dialect: DbUrl['dialect'];
  readonly sequelize: Sequelize;
  readonly models: Models;
  start(): Promise<void>;
  stop(): Promise<void>;
  health(): Promise<RegistryHealth>;
  products: {
    create(input: ProductInput): Promise<Product>;
    get(idOrKey: string): Promise<Product>;
    find(idOrKey: string): Promise<Product | null>;
    /** Products by id, in one query (missing ids are left out). */
    findMany(ids: string[]): Promise<Product[]>;
    list(filter: { key?: string; q?: string; protocol_plugin_id?: string } & ListOptions): Promise<Page<Product>>;
    update(id: string, patch: Partial<ProductInput>): Promise<Product>;
    delete(id: string): Promise<void>;
  };
  devices: {
    /** Returns the device and its secret in clear, the only time it is ever returned. */
    create(input: DeviceInput): Promise<{ device: Device; secret: string }>;
    get(id: string): Promise<Device>;
    find(id: string): Promise<Device | null>;
    /** The devices of many products in one query, at most `limitEach` per product (oldest first): product id → devices. */
    byProducts(productIds: string[], limitEach: number): Promise<Map<string, Device[]>>;
    list(filter: { product_id?: string; status?: string; q?: string; enabled?: boolean; is_gateway?: boolean; gateway_id?: string } & ListOptions): Promise<Page<Device>>;
    update(id: string, patch: DevicePatch): Promise<Device>;
    /** The children of a gateway (404 when no such device). */
    children(gatewayId: string, page?: ListOptions): Promise<Page<Device>>;
    /** The ids of a gateway's children, cached (registry writes drop the entry at once). */
    childIds(gatewayId: string): Promise<ReadonlySet<string>>;
    /** The cached child ids of a gateway without a Promise, or undefined (then ask `childIds`). */
    cachedChildIds(gatewayId: string): ReadonlySet<string> | undefined;
    delete(id: string): Promise<void>;
    rotateSecret(id: string, secret?: string): Promise<{ device: Device; secret: string }>;
    /** Device + product when `secret` matches (constant-time), else null. Cached briefly for connection storms. */
    authenticate(id: string, secret: string): Promise<DeviceIdentity | null>;
    /** Device + product by id, no secret check (ingress that already authenticated). */
    identity(id: string): Promise<DeviceIdentity | null>;
    /** The cached identity while it is fresh, else undefined (then ask `identity`): no Promise per message. */
    cachedIdentity(id: string): DeviceIdentity | undefined;
    setStatus(id: string, status: 'online' | 'offline', at?: Date): Promise<void>;
    /** Many status changes in a few statements (a reconnect storm must not become one write each). */
    setStatuses(changes: { id: string; status: 'online' | 'offline'; at: Date }[]): Promise<void>;
  };
  /** Stored versions of protocol plugins (rows; their files are the plugin host's). */
  pluginVersions: PluginVersions;
  /** Drops cached identities (after an update made elsewhere, e.g. another node). */
  invalidate(deviceId?: string): void;
}

export interface RegistryOptions {
  db: DbUrl;
  log: Logger;
  /** Sequelize pool size for MySQL/PostgreSQL (SQLite always uses one connection). */
  poolMax?: number;
  /** how long a cached device identity counts as fresh (default 30 s; see cachedIdentity) */
  identityTtlMs?: number;
}

const DEVICE_ID_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
export const DEVICE_ID_PATTERN = DEVICE_ID_RE.source;
export const PRODUCT_KEY_PATTERN = '^[A-Za-z0-9_-]{1,64}$';

const BOOLEAN_FIELDS = ['enabled', 'is_gateway', 'auto_register_children'] as const;

function plain<T>(m: Model | null): T | null {
  if (!m) return null;
  const src = m.get({ plain: true }) as Record<string, unknown>;
  // A fresh object without the secret, not `delete`: a deleted property turns an object into a
  // dictionary (~830 bytes instead of ~150), and identities stay cached for every connected device.
  const o: Record<string, unknown> = {};
  for (const k of Object.keys(src)) {
    if (k === 'secret_hash') continue;
    const v = src[k];
    o[k] = v instanceof Date ? v.toISOString() : v;
  }
  for (const k of BOOLEAN_FIELDS) if (k in o) o[k] = Boolean(o[k]);
  return o as T;
}

function clampPage(o: ListOptions): { limit: number; offset: number } {
  return { limit: Math.min(Math.max(o.limit ?? 50, 1), 1000), offset: Math.max(o.offset ?? 0, 0) };
}

function likeOp(dialect: string) {
  return dialect === 'postgres' ? Op.iLike : Op.like;
}

/** Turns a driver error at connect time into the one line the CLI prints. */
function connectError(db: DbUrl, err: unknown): ConfigError {
  const e = err as { message?: string; original?: { code?: string; message?: string }; parent?: { code?: string } };
  const cause = e.original?.code ?? e.parent?.code ?? e.original?.message ?? e.message ?? String(err);
  const where = db.dialect === 'sqlite' ? db.file : redact(db.url);
  return new ConfigError('FLUX_DB_URL', `FLUX_DB_URL: cannot open the ${db.dialect} database ${where}: ${cause}`);
}

export function createRegistry(opts: RegistryOptions): Registry {
  const { db, log } = opts;
  const sequelize =
    db.dialect === 'sqlite'
      ? new Sequelize({
          dialect: 'sqlite',
          storage: db.file,
          dialectModule: sqliteDialectModule,
          logging: false,
          pool: { max: 1, min: 0, idle: 60_000 },
        })
      : new Sequelize(db.url, {
          dialect: db.dialect,
          logging: false,
          pool: { max: opts.poolMax ?? 10, min: 0, idle: 10_000, acquire: 10_000 },
          dialectOptions: db.dialect === 'mysql' ? { connectTimeout: 5000 } : { connectionTimeoutMillis: 5000 },
        });
  const models = defineModels(sequelize);
  const { Product, Device } = models;
  const like = likeOp(db.dialect);

  const quote = (name: string) => sequelize.getQueryInterface().quoteIdentifier(name);
  const statusUpdateSql = `UPDATE ${quote('devices')} SET ${quote('status')} = ?, ${quote('last_online')} = ?, ${quote('updated_at')} = ? WHERE ${quote('id')} IN`;

  // Identity cache: a connection storm of 10k devices must not become 10k registry reads each.
  const IDENTITY_TTL_MS = opts.identityTtlMs ?? 30_000;
  const IDENTITY_MAX = 100_000;
  const identities = new Map<string, { at: number; hash: string; identity: DeviceIdentity }>();
  const productCache = new Map<string, { at: number; product: Product }>();

  type IdentityEntry = { at: number; hash: string; identity: DeviceIdentity };
  /** reads in flight, one per device: concurrent lookups of a device share it */
  const loading = new Map<string, Promise<IdentityEntry | null>>();
  /** bumped by every invalidation: a read that started before one does not fill the cache */
  let epoch = 0;

  function loadIdentity(id: string): Promise<IdentityEntry | null> {
    const cached = identities.get(id);
    if (cached && Date.now() - cached.at < IDENTITY_TTL_MS) return Promise.resolve(cached);
    let pending = loading.get(id);
    if (!pending) {
      pending = readIdentity(id).finally(() => loading.delete(id));
      loading.set(id, pending);
    }
    return pending;
  }

  async function readIdentity(id: string): Promise<IdentityEntry | null> {
    const startEpoch = epoch;
    const row = await Device.findByPk(id);
    if (!row) return null;
    const productId = row.get('product_id') as string;
    // One product object shared by all its cached devices (18k devices, a handful of products).
    const cachedProduct = productCache.get(productId);
    let product = cachedProduct && Date.now() - cachedProduct.at < IDENTITY_TTL_MS ? cachedProduct.product : undefined;
    if (!product) {
      product = plain<Product>(await Product.findByPk(productId)) ?? undefined;
      if (!product) return null;
      if (epoch === startEpoch) productCache.set(productId, { at: Date.now(), product });
    }
    // Entries age from a point up to a third of the TTL back: devices that connected together (a
    // storm, a restart) do not all expire in the same second.
    const entry = { at: Date.now() - Math.random() * (IDENTITY_TTL_MS / 3), hash: row.get('secret_hash') as string, identity: { device: plain<Device>(row)!, product } };
    if (epoch !== startEpoch) return entry;
    if (identities.size >= IDENTITY_MAX) identities.delete(identities.keys().next().value as string);
    identities.set(id, entry);
    return entry;
  }

  /** Drops a device's cached identity (every device's without an id); a read in flight no longer fills the cache. */
  const forget = (id?: string) => {
    epoch++;
    if (id === undefined) identities.clear();
    else identities.delete(id);
  };

  const invalidateProduct = (productId: string) => {
    epoch++;
    productCache.delete(productId);
    for (const [k, v] of identities) if (v.identity.product.id === productId) identities.delete(k);
  };

  /** the id of a product named by id or key (404 naming it when there is none) */
  const productIdOf = async (idOrKey: string) => (await products.get(idOrKey)).id;

  const gateways = createGatewayTopology({
    Device,
    ttlMs: IDENTITY_TTL_MS,
    onRefreshError: (gatewayId, err) => log.warn({ gatewayId, err: err.message }, 'refreshing the children of a gateway failed'),
  });

  const products: Registry['products'] = {
    async create(input) {
      try {
        const row = await Product.create({
          key: input.key,
          name: input.name,
          description: input.description ?? null,
          protocol_plugin_id: input.protocol_plugin_id ?? null,
          metadata: input.metadata ?? {},
          transport: input.transport ?? {},
          auto_register_children: input.auto_register_children ?? false,
          child_product_id: input.child_product_id ? await productIdOf(input.child_product_id) : null,
        });
        return plain<Product>(row)!;
      } catch (err) {
        if (err instanceof UniqueConstraintError) throw conflict(`a product with key '${input.key}' already exists`);
        throw err;
      }
    },
    async findMany(ids) {
      if (ids.length === 0) return [];
      const rows = await Product.findAll({ where: { id: ids } });
      return rows.map((r) => plain<Product>(r)!);
    },
    async find(idOrKey) {
      const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrKey);
      const row = isUuid ? await Product.findByPk(idOrKey) : await Product.findOne({ where: { key: idOrKey } });
      return plain<Product>(row);
    },
    async get(idOrKey) {
      const p = await products.find(idOrKey);
      if (!p) throw notFound('product', idOrKey);
      return p;
    },
    async list(filter) {
      const { limit, offset } = clampPage(filter);
      const where: WhereOptions = {};
      if (filter.key) Object.assign(where, { key: filter.key });
      if (filter.protocol_plugin_id) Object.assign(where, { protocol_plugin_id: filter.protocol_plugin_id });
      if (filter.q) Object.assign(where, { [Op.or]: [{ name: { [like]: `%${filter.q}%` } }, { key: { [like]: `%${filter.q}%` } }] });
      const { rows, count } = await Product.findAndCountAll({ where, limit, offset, order: [['created_at', 'ASC'], ['key', 'ASC']] });
      return { items: rows.map((r) => plain<Product>(r)!), total: count, limit, offset };
    },
    async update(id, patch) {
      const row = await Product.findByPk(id);
      if (!row) throw notFound('product', id);
      if (patch.child_product_id) patch = { ...patch, child_product_id: await productIdOf(patch.child_product_id) };
      try {
        await row.update(patch);
      } catch (err) {
        if (err instanceof UniqueConstraintError) throw conflict(`a product with key '${patch.key}' already exists`);
        throw err;
      }
      invalidateProduct(id);
      return plain<Product>(row)!;
    },
    async delete(id) {
      const row = await Product.findByPk(id);
      if (!row) throw notFound('product', id);
      const n = await Device.count({ where: { product_id: id } });
      if (n > 0) throw conflict(`product '${row.get('key')}' still has ${n} device(s); delete them first`);
      try {
        await row.destroy();
      } catch (err) {
        if (err instanceof ForeignKeyConstraintError) throw conflict(`product '${row.get('key')}' still has devices; delete them first`);
        throw err;
      }
      invalidateProduct(id);
    },
  };

  const devices: Registry['devices'] = {
    async create(input) {
      const id = input.id ?? `dev_${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`;
      if (!DEVICE_ID_RE.test(id)) throw new FluxError('bad_request', `device id '${id}' must match ${DEVICE_ID_PATTERN}`, 400);
      const product = await products.find(input.product_id);
      if (!product) throw notFound('product', input.product_id);
      const secret = input.secret ?? generateSecret();
      const gatewayId = input.gateway_id ?? null;
      const create = async () => {
        if (gatewayId !== null) await gateways.checkParent(id, gatewayId);
        try {
          const row = await Device.create({
            id,
            product_id: product.id,
            name: input.name ?? id,
            secret_hash: hashSecret(secret),
            enabled: input.enabled ?? true,
            status: 'offline',
            tags: input.tags ?? {},
            is_gateway: input.is_gateway ?? false,
            gateway_id: gatewayId,
            transport: input.transport ?? null,
          });
          forget(id);
          gateways.forget(gatewayId);
          return { device: plain<Device>(row)!, secret };
        } catch (err) {
          if (err instanceof UniqueConstraintError) throw conflict(`a device with id '${id}' already exists`);
          throw err;
        }
      };
      return gatewayId === null ? create() : gateways.serialized(create);
    },
    async find(id) {
      return plain<Device>(await Device.findByPk(id));
    },
    async byProducts(productIds, limitEach) {
      const out = new Map<string, Device[]>(productIds.map((id) => [id, []]));
      if (productIds.length === 0) return out;
      const rows = await Device.findAll({ where: { product_id: productIds }, limit: Math.min(productIds.length * limitEach, 100_000), order: [['created_at', 'ASC'], ['id', 'ASC']] });
      for (const r of rows) {
        const d = plain<Device>(r)!;
        const list = out.get(d.product_id);
        if (list && list.length < limitEach) list.push(d);
      }
      return out;
    },
    async get(id) {
      const d = await devices.find(id);
      if (!d) throw notFound('device', id);
      return d;
    },
    async list(filter) {
      const { limit, offset } = clampPage(filter);
      const where: WhereOptions = {};
      if (filter.product_id) {
        const p = await products.find(filter.product_id);
        Object.assign(where, { product_id: p?.id ?? filter.product_id });
      }
      if (filter.status) Object.assign(where, { status: filter.status });
      if (filter.enabled !== undefined) Object.assign(where, { enabled: filter.enabled });
      if (filter.is_gateway !== undefined) Object.assign(where, { is_gateway: filter.is_gateway });
      if (filter.gateway_id !== undefined) Object.assign(where, { gateway_id: filter.gateway_id });
      if (filter.q) Object.assign(where, { [Op.or]: [{ name: { [like]: `%${filter.q}%` } }, { id: { [like]: `%${filter.q}%` } }] });
      const { rows, count } = await Device.findAndCountAll({ where, limit, offset, order: [['created_at', 'ASC'], ['id', 'ASC']] });
      return { items: rows.map((r) => plain<Device>(r)!), total: count, limit, offset };
    },
    async update(id, patch) {
      const topology = patch.gateway_id !== undefined || patch.is_gateway === false;
      const change = async () => {
        const row = await Device.findByPk(id);
        if (!row) throw notFound('device', id);
        const before = row.get('gateway_id') as string | null;
        if (patch.gateway_id && patch.gateway_id !== before) await gateways.checkParent(id, patch.gateway_id);
        if (patch.is_gateway === false && row.get('is_gateway')) {
          const n = await Device.count({ where: { gateway_id: id } });
          if (n > 0) throw conflict(`device '${id}' is the gateway of ${n} device(s); detach them before it stops being a gateway`);
        }
        await row.update(patch);
        forget(id);
        gateways.forget(id, before, row.get('gateway_id') as string | null);
        return plain<Device>(row)!;
      };
      return topology ? gateways.serialized(change) : change();
    },
    async delete(id) {
      await gateways.serialized(async () => {
        const row = await Device.findByPk(id);
        if (!row) throw notFound('device', id);
        const n = await Device.count({ where: { gateway_id: id } });
        if (n > 0) throw conflict(`device '${id}' is the gateway of ${n} device(s); detach or delete them first`);
        await row.destroy();
        forget(id);
        gateways.forget(id, row.get('gateway_id') as string | null);
      });
    },
    async children(gatewayId, page = {}) {
      if (!(await Device.findByPk(gatewayId, { attributes: ['id'] }))) throw notFound('device', gatewayId);
      return devices.list({ ...page, gateway_id: gatewayId });
    },
    childIds: (gatewayId) => gateways.childIds(gatewayId),
    cachedChildIds: (gatewayId) => gateways.cachedChildIds(gatewayId),
    async rotateSecret(id, secret) {
      const row = await Device.findByPk(id);
      if (!row) throw notFound('device', id);
      const s = secret ?? generateSecret();
      await row.update({ secret_hash: hashSecret(s) });
      forget(id);
      return { device: plain<Device>(row)!, secret: s };
    },
    async authenticate(id, secret) {
      if (!DEVICE_ID_RE.test(id)) return null;
      const entry = await loadIdentity(id);
      if (!entry || !verifySecret(secret, entry.hash)) return null;
      return entry.identity;
    },
    async identity(id) {
      if (!DEVICE_ID_RE.test(id)) return null;
      return (await loadIdentity(id))?.identity ?? null;
    },
    cachedIdentity(id) {
      const cached = identities.get(id);
      if (!cached) return undefined;
      // Past its TTL: served while one background read refreshes it. Registry changes invalidate
      // entries at once; the TTL only bounds changes made elsewhere. Before, every device's entry
      // expired together 30 s after a storm, and each of its messages then waited on its own read
      // (at 20k msg/s: thousands of reads at once, seconds of backlog, lost messages).
      if (Date.now() - cached.at >= IDENTITY_TTL_MS && !loading.has(id)) loadIdentity(id).catch((err: Error) => log.warn({ deviceId: id, err: err.message }, 'refreshing a device identity failed'));
      return cached.identity;
    },
    async setStatuses(changes) {
      if (changes.length === 0) return;
      // Group by (status, time to the second): one UPDATE … WHERE id IN (…) per group.
      const groups = new Map<string, { status: 'online' | 'offline'; at: Date; ids: string[] }>();
      for (const c of changes) {
        const key = `${c.status}@${Math.floor(c.at.getTime() / 1000)}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { status: c.status, at: c.at, ids: [] }));
        g.ids.push(c.id);
        const cached = identities.get(c.id);
        if (cached) {
          cached.identity.device.status = c.status;
          cached.identity.device.last_online = c.at.toISOString();
        }
      }
      // Each UPDATE is atomic on its own; no transaction, because Sequelize runs a SQLite
      // transaction on a second connection whose lock waits would block the event loop.
      // Plain SQL, not Model.update: that one clones its options, builds and validates a model
      // instance and runs hooks per call; in a connection storm of 10k devices it allocated
      // ~50 KB per device (heap sampling), most of a storm's garbage.
      const now = new Date();
      for (const g of groups.values()) {
        for (let i = 0; i < g.ids.length; i += 500) {
          const ids = g.ids.slice(i, i + 500);
          await sequelize.query(`${statusUpdateSql} (${ids.map(() => '?').join(', ')})`, { replacements: [g.status, g.at, now, ...ids], type: QueryTypes.UPDATE });
        }
      }
    },
    async setStatus(id, status, at = new Date()) {
      const values: Record<string, unknown> = { status };
      if (status === 'online') values.last_online = at;
      else values.last_online = at; // last_online = the last moment the device was seen connected
      await Device.update(values, { where: { id } });
      const cached = identities.get(id);
      if (cached) {
        cached.identity.device.status = status;
        cached.identity.device.last_online = at.toISOString();
      }
    },
  };

  return {
    dialect: db.dialect,
    sequelize,
    models,
    products,
    devices,
    pluginVersions: pluginVersions(sequelize, models),
    invalidate(deviceId) {
      if (deviceId) forget(deviceId);
      else {
        forget();
        productCache.clear();
      }
      gateways.forget();
    },
    async start() {
      if (db.dialect === 'sqlite' && db.file) {
        try {
          fs.mkdirSync(path.dirname(db.file), { recursive: true });
          fs.accessSync(path.dirname(db.file), fs.constants.W_OK);
        } catch (err) {
          throw new ConfigError('FLUX_DB_URL', `FLUX_DB_URL: the folder of ${db.file} is not writable (${(err as NodeJS.ErrnoException).code ?? err})`);
        }
      }
      try {
        await sequelize.authenticate();
      } catch (err) {
        throw connectError(db, err);
      }
      const umzug = new Umzug({
        migrations: MIGRATIONS.map((m) => ({ name: m.name, up: () => m.up(sequelize.getQueryInterface()), down: () => m.down(sequelize.getQueryInterface()) })),
        context: sequelize.getQueryInterface(),
        storage: new SequelizeStorage({ sequelize, tableName: 'flux_migrations' }),
        logger: undefined,
      });
      const done = await umzug.up();
      if (done.length) log.info({ migrations: done.map((m) => m.name), dialect: db.dialect }, 'registry migrated');
    },
    async stop() {
      forget();
      gateways.forget();
      productCache.clear();
      await sequelize.close();
    },
    async health() {
      const t0 = performance.now();
      try {
        await sequelize.query('SELECT 1');
        return { ok: true, dialect: db.dialect, latency_ms: Math.round((performance.now() - t0) * 100) / 100 };
      } catch (err) {
        return { ok: false, dialect: db.dialect, error: (err as Error).message };
      }
    },
  };
}
