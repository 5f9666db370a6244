/**
 * The cache of device identities (device + product + secret hash): a connection storm of 10k devices
 * must not become 10k registry reads each, and the uplink path asks it without a Promise per message.
 * Registry writes drop entries at once; the TTL only bounds changes made elsewhere (another node).
 */
import type { Logger } from '../log/index.ts';
import { plainRow, type Db } from './rows.ts';
import type { Device, DeviceIdentity } from './repositories/devices.ts';
import type { Product } from './repositories/products.ts';

export interface IdentityEntry {
  at: number;
  hash: string;
  identity: DeviceIdentity;
}

export interface IdentityCache {
  /** the fresh entry, else one read (concurrent lookups of a device share it); null: no such device */
  load(id: string): Promise<IdentityEntry | null>;
  /** the cached identity, served past its TTL while one background read refreshes it; undefined when none */
  cached(id: string): DeviceIdentity | undefined;
  /** keeps a cached device's status current after a status write */
  noteStatus(id: string, status: 'online' | 'offline', at: Date): void;
  /** drops a device's entry (every device's without an id); a read in flight no longer fills the cache */
  forget(id?: string): void;
  /** drops a product and every device entry that holds it */
  forgetProduct(productId: string): void;
  /** drops everything, products included */
  clear(): void;
}

const IDENTITY_MAX = 100_000;
export const DEVICE_BOOLEANS = ['enabled', 'is_gateway'] as const;
const PRODUCT_BOOLEANS = ['auto_register_children'] as const;

export function createIdentityCache(db: Db, ttlMs: number, log: Logger): IdentityCache {
  const { Device, Product } = db.models;
  const identities = new Map<string, IdentityEntry>();
  const productCache = new Map<string, { at: number; product: Product }>();
  /** reads in flight, one per device */
  const loading = new Map<string, Promise<IdentityEntry | null>>();
  /** bumped by every invalidation: a read that started before one does not fill the cache */
  let epoch = 0;

  async function read(id: string): Promise<IdentityEntry | null> {
    const startEpoch = epoch;
    const row = await Device.findByPk(id);
    if (!row) return null;
    const productId = row.get('product_id') as string;
    // One product object shared by all its cached devices (18k devices, a handful of products).
    const cachedProduct = productCache.get(productId);
    let product = cachedProduct && Date.now() - cachedProduct.at < ttlMs ? cachedProduct.product : undefined;
    if (!product) {
      const p = await Product.findByPk(productId);
      if (!p) return null;
      product = plainRow(p, PRODUCT_BOOLEANS) as unknown as Product;
      if (epoch === startEpoch) productCache.set(productId, { at: Date.now(), product });
    }
    // Entries age from a point up to a third of the TTL back: devices that connected together (a
    // storm, a restart) do not all expire in the same second.
    const device = plainRow(row, DEVICE_BOOLEANS, 'secret_hash') as unknown as Device;
    const entry = { at: Date.now() - Math.random() * (ttlMs / 3), hash: row.get('secret_hash') as string, identity: { device, product } };
    if (epoch !== startEpoch) return entry;
    if (identities.size >= IDENTITY_MAX) identities.delete(identities.keys().next().value as string);
    identities.set(id, entry);
    return entry;
  }

  function load(id: string): Promise<IdentityEntry | null> {
    const cached = identities.get(id);
    if (cached && Date.now() - cached.at < ttlMs) return Promise.resolve(cached);
    let pending = loading.get(id);
    if (!pending) {
      pending = read(id).finally(() => loading.delete(id));
      loading.set(id, pending);
    }
    return pending;
  }

  const forget = (id?: string) => {
    epoch++;
    if (id === undefined) identities.clear();
    else identities.delete(id);
  };

  return {
    load,
    cached(id) {
      const cached = identities.get(id);
      if (!cached) return undefined;
      // Past its TTL: served while one background read refreshes it. Before, every device's entry
      // expired together 30 s after a storm, and each of its messages then waited on its own read
      // (at 20k msg/s: thousands of reads at once, seconds of backlog, lost messages).
      if (Date.now() - cached.at >= ttlMs && !loading.has(id)) load(id).catch((err: Error) => log.warn({ deviceId: id, err: err.message }, 'refreshing a device identity failed'));
      return cached.identity;
    },
    noteStatus(id, status, at) {
      const cached = identities.get(id);
      if (!cached) return;
      cached.identity.device.status = status;
      cached.identity.device.last_online = at.toISOString();
    },
    forget,
    forgetProduct(productId) {
      epoch++;
      productCache.delete(productId);
      for (const [k, v] of identities) if (v.identity.product.id === productId) identities.delete(k);
    },
    clear() {
      forget();
      productCache.clear();
    },
  };
}
