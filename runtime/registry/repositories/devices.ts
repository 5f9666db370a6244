/**
 * The devices repository: devices with their hashed secret, gateways and their children, status, and
 * the cached identities the broker and the uplink path authenticate with (runtime/registry/identities.ts).
 * test/registry/registry.test.ts and gateways.test.ts run it on SQLite, MariaDB and PostgreSQL.
 */
import { Op, QueryTypes, UniqueConstraintError, type Model, type WhereOptions } from 'sequelize';
import { FluxError, conflict, notFound } from '../../errors/index.ts';
import { generateSecret, hashSecret, verifySecret } from '../secrets.ts';
import type { GatewayTopology } from '../gateways.ts';
import { DEVICE_BOOLEANS, type IdentityCache } from '../identities.ts';
import { clampPage, likeOp, plainRow, rawReader, type Db, type ListOptions, type Page } from '../rows.ts';
import type { Product, ProductRepository } from './products.ts';
import type { Device } from '../../api-shapes/index.ts';

export type { Device };

/** A verified device with its product, as the broker and ingress need it. */
export interface DeviceIdentity {
  device: Device;
  product: Product;
}

/** An identity with an opaque stamp of the device's secret: a new secret, a new stamp. */
export interface DeviceAccess {
  identity: DeviceIdentity;
  stamp: string;
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

export interface DeviceRepository {
  /** Returns the device and its secret in clear, the only time it is ever returned. */
  create(input: DeviceInput): Promise<{ device: Device; secret: string }>;
  /**
   * Many plain devices of one product with one secret, in batches, leaving ids that exist as they
   * are (bulk provisioning: benchmarks, load tests). No gateways, no per-device checks beyond the id.
   */
  createMany(input: { product_id: string; ids: string[]; secret: string; name?: (id: string) => string }): Promise<void>;
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
  /**
   * `authenticate` with the stamp of the secret it matched: a connection keeps the stamp, and
   * `access` later tells whether that secret is still the device's (runtime/ingress/revocation.ts).
   */
  credential(id: string, secret: string): Promise<DeviceAccess | null>;
  /** The device's identity and the stamp of its current secret, read through the identity cache (fresh after a write or an `invalidate`). */
  access(id: string): Promise<DeviceAccess | null>;
  /** Device + product by id, no secret check (ingress that already authenticated). */
  identity(id: string): Promise<DeviceIdentity | null>;
  /** The cached identity while it is fresh, else undefined (then ask `identity`): no Promise per message. */
  cachedIdentity(id: string): DeviceIdentity | undefined;
  setStatus(id: string, status: 'online' | 'offline', at?: Date): Promise<void>;
  /** Many status changes in a few statements (a reconnect storm must not become one write each). */
  setStatuses(changes: { id: string; status: 'online' | 'offline'; at: Date }[]): Promise<void>;
}

const DEVICE_ID_RE = /^[A-Za-z0-9_.:-]{1,64}$/;
export const DEVICE_ID_PATTERN = DEVICE_ID_RE.source;

export function createDeviceRepository(db: Db, products: ProductRepository, identities: IdentityCache, gateways: GatewayTopology): DeviceRepository {
  const { Device: DeviceModel } = db.models;
  const like = likeOp(db.dialect);
  const plain = (m: Model) => plainRow(m, DEVICE_BOOLEANS, 'secret_hash') as unknown as Device;
  // lists read raw rows (no model instance each); test/registry/registry.test.ts compares them with plain()
  const reader = rawReader(DeviceModel, DEVICE_BOOLEANS, 'secret_hash');
  const fromRaw = (r: object) => reader.row(r as Record<string, unknown>) as unknown as Device;
  const quote = (name: string) => db.sequelize.getQueryInterface().quoteIdentifier(name);
  const statusUpdateSql = `UPDATE ${quote('devices')} SET ${quote('status')} = ?, ${quote('last_online')} = ?, ${quote('updated_at')} = ? WHERE ${quote('id')} IN`;

  const devices: DeviceRepository = {
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
          const row = await DeviceModel.create({
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
          identities.forget(id);
          gateways.forget(gatewayId);
          return { device: plain(row), secret };
        } catch (err) {
          if (err instanceof UniqueConstraintError) throw conflict(`a device with id '${id}' already exists`);
          throw err;
        }
      };
      return gatewayId === null ? create() : gateways.serialized(create);
    },
    async createMany({ product_id, ids, secret, name }) {
      const product = await products.get(product_id);
      for (const id of ids) if (!DEVICE_ID_RE.test(id)) throw new FluxError('bad_request', `device id '${id}' must match ${DEVICE_ID_PATTERN}`, 400);
      const secret_hash = hashSecret(secret);
      const now = new Date();
      for (let i = 0; i < ids.length; i += 2000) {
        const rows = ids.slice(i, i + 2000).map((id) => ({ id, product_id: product.id, name: name?.(id) ?? id, secret_hash, enabled: true, status: 'offline', tags: {}, created_at: now, updated_at: now }));
        await DeviceModel.bulkCreate(rows, { ignoreDuplicates: true });
      }
      identities.forget();
    },
    async find(id) {
      const row = await DeviceModel.findByPk(id);
      return row ? plain(row) : null;
    },
    async byProducts(productIds, limitEach) {
      const out = new Map<string, Device[]>(productIds.map((id) => [id, []]));
      if (productIds.length === 0) return out;
      const rows = await DeviceModel.findAll({ where: { product_id: productIds }, attributes: reader.attributes, raw: true, limit: Math.min(productIds.length * limitEach, 100_000), order: [['created_at', 'ASC'], ['id', 'ASC']] });
      for (const r of rows) {
        const d = fromRaw(r);
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
        // No such product: no devices. The value itself never reaches the UUID column (PostgreSQL refuses a non-UUID there).
        const p = await products.find(filter.product_id);
        if (!p) return { items: [], total: 0, limit, offset };
        Object.assign(where, { product_id: p.id });
      }
      if (filter.status) Object.assign(where, { status: filter.status });
      if (filter.enabled !== undefined) Object.assign(where, { enabled: filter.enabled });
      if (filter.is_gateway !== undefined) Object.assign(where, { is_gateway: filter.is_gateway });
      if (filter.gateway_id !== undefined) Object.assign(where, { gateway_id: filter.gateway_id });
      if (filter.q) Object.assign(where, { [Op.or]: [{ name: { [like]: `%${filter.q}%` } }, { id: { [like]: `%${filter.q}%` } }] });
      const [rows, count] = await Promise.all([DeviceModel.findAll({ where, attributes: reader.attributes, raw: true, limit, offset, order: [['created_at', 'ASC'], ['id', 'ASC']] }), DeviceModel.count({ where })]);
      return { items: rows.map(fromRaw), total: count, limit, offset };
    },
    async update(id, patch) {
      const topology = patch.gateway_id !== undefined || patch.is_gateway === false;
      const change = async () => {
        const row = await DeviceModel.findByPk(id);
        if (!row) throw notFound('device', id);
        const before = row.get('gateway_id') as string | null;
        if (patch.gateway_id && patch.gateway_id !== before) await gateways.checkParent(id, patch.gateway_id);
        if (patch.is_gateway === false && row.get('is_gateway')) {
          const n = await DeviceModel.count({ where: { gateway_id: id } });
          if (n > 0) throw conflict(`device '${id}' is the gateway of ${n} device(s); detach them before it stops being a gateway`);
        }
        await row.update(patch);
        identities.forget(id);
        gateways.forget(id, before, row.get('gateway_id') as string | null);
        return plain(row);
      };
      return topology ? gateways.serialized(change) : change();
    },
    async delete(id) {
      await gateways.serialized(async () => {
        const row = await DeviceModel.findByPk(id);
        if (!row) throw notFound('device', id);
        const n = await DeviceModel.count({ where: { gateway_id: id } });
        if (n > 0) throw conflict(`device '${id}' is the gateway of ${n} device(s); detach or delete them first`);
        await row.destroy();
        identities.forget(id);
        gateways.forget(id, row.get('gateway_id') as string | null);
      });
    },
    async children(gatewayId, page = {}) {
      if (!(await DeviceModel.findByPk(gatewayId, { attributes: ['id'] }))) throw notFound('device', gatewayId);
      return devices.list({ ...page, gateway_id: gatewayId });
    },
    childIds: (gatewayId) => gateways.childIds(gatewayId),
    cachedChildIds: (gatewayId) => gateways.cachedChildIds(gatewayId),
    async rotateSecret(id, secret) {
      const row = await DeviceModel.findByPk(id);
      if (!row) throw notFound('device', id);
      const s = secret ?? generateSecret();
      await row.update({ secret_hash: hashSecret(s) });
      identities.forget(id);
      return { device: plain(row), secret: s };
    },
    async authenticate(id, secret) {
      return (await devices.credential(id, secret))?.identity ?? null;
    },
    async credential(id, secret) {
      if (!DEVICE_ID_RE.test(id)) return null;
      const entry = await identities.load(id);
      if (!entry || !verifySecret(secret, entry.hash)) return null;
      // the salted hash itself (held by reference, no copy): every rotation salts anew
      return { identity: entry.identity, stamp: entry.hash };
    },
    async access(id) {
      if (!DEVICE_ID_RE.test(id)) return null;
      const entry = await identities.load(id);
      return entry && { identity: entry.identity, stamp: entry.hash };
    },
    async identity(id) {
      if (!DEVICE_ID_RE.test(id)) return null;
      return (await identities.load(id))?.identity ?? null;
    },
    cachedIdentity: (id) => identities.cached(id),
    async setStatuses(changes) {
      if (changes.length === 0) return;
      // Group by (status, time to the second): one UPDATE … WHERE id IN (…) per group.
      const groups = new Map<string, { status: 'online' | 'offline'; at: Date; ids: string[] }>();
      for (const c of changes) {
        const key = `${c.status}@${Math.floor(c.at.getTime() / 1000)}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { status: c.status, at: c.at, ids: [] }));
        g.ids.push(c.id);
        identities.noteStatus(c.id, c.status, c.at);
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
          await db.sequelize.query(`${statusUpdateSql} (${ids.map(() => '?').join(', ')})`, { replacements: [g.status, g.at, now, ...ids], type: QueryTypes.UPDATE });
        }
      }
    },
    async setStatus(id, status, at = new Date()) {
      // last_online = the last moment the device was seen connected (its going offline included)
      await DeviceModel.update({ status, last_online: at }, { where: { id } });
      identities.noteStatus(id, status, at);
    },
  };
  return devices;
}
