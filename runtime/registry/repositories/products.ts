/**
 * The products repository: product types with their thing model and transport settings, found by id
 * or key. test/registry/registry.test.ts runs it on SQLite, MariaDB and PostgreSQL.
 */
import { ForeignKeyConstraintError, Op, UniqueConstraintError, type WhereOptions } from 'sequelize';
import { conflict, notFound } from '../../errors/index.ts';
import { clampPage, isUuid, likeOp, plainRow, type Db, type ListOptions, type Page } from '../rows.ts';

export interface ThingModel {
  properties?: { id: string; name?: string; type: 'int' | 'float' | 'double' | 'bool' | 'string' | 'enum' | 'number'; unit?: string; [k: string]: unknown }[];
  events?: { id: string; name?: string; [k: string]: unknown }[];
  commands?: { id: string; name?: string; params?: unknown[]; [k: string]: unknown }[];
  [k: string]: unknown;
}

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

export interface ProductRepository {
  /** 409 when the key is taken */
  create(input: ProductInput): Promise<Product>;
  get(idOrKey: string): Promise<Product>;
  find(idOrKey: string): Promise<Product | null>;
  /** Products by id, in one query (missing ids are left out). */
  findMany(ids: string[]): Promise<Product[]>;
  /** oldest first; `q` matches name or key, case-insensitively */
  list(filter: { key?: string; q?: string; protocol_plugin_id?: string } & ListOptions): Promise<Page<Product>>;
  update(id: string, patch: Partial<ProductInput>): Promise<Product>;
  /** 409 while the product has devices */
  delete(id: string): Promise<void>;
}

export const PRODUCT_KEY_PATTERN = '^[A-Za-z0-9_-]{1,64}$';
const BOOLEANS = ['auto_register_children'] as const;

/** `changed`: a product was updated or deleted (the device identity cache drops what it holds of it). */
export function createProductRepository(db: Db, changed: (productId: string) => void): ProductRepository {
  const { Product: ProductModel, Device } = db.models;
  const like = likeOp(db.dialect);
  const plain = (m: Parameters<typeof plainRow>[0]) => plainRow(m, BOOLEANS) as unknown as Product;
  /** the id of a product named by id or key (404 naming it when there is none) */
  const idOf = async (idOrKey: string) => (await products.get(idOrKey)).id;

  const products: ProductRepository = {
    async create(input) {
      try {
        const row = await ProductModel.create({
          key: input.key,
          name: input.name,
          description: input.description ?? null,
          protocol_plugin_id: input.protocol_plugin_id ?? null,
          metadata: input.metadata ?? {},
          transport: input.transport ?? {},
          auto_register_children: input.auto_register_children ?? false,
          child_product_id: input.child_product_id ? await idOf(input.child_product_id) : null,
        });
        return plain(row);
      } catch (err) {
        if (err instanceof UniqueConstraintError) throw conflict(`a product with key '${input.key}' already exists`);
        throw err;
      }
    },
    async findMany(ids) {
      if (ids.length === 0) return [];
      return (await ProductModel.findAll({ where: { id: ids } })).map(plain);
    },
    async find(idOrKey) {
      const row = isUuid(idOrKey) ? await ProductModel.findByPk(idOrKey) : await ProductModel.findOne({ where: { key: idOrKey } });
      return row ? plain(row) : null;
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
      const { rows, count } = await ProductModel.findAndCountAll({ where, limit, offset, order: [['created_at', 'ASC'], ['key', 'ASC']] });
      return { items: rows.map(plain), total: count, limit, offset };
    },
    async update(id, patch) {
      const row = await ProductModel.findByPk(id);
      if (!row) throw notFound('product', id);
      if (patch.child_product_id) patch = { ...patch, child_product_id: await idOf(patch.child_product_id) };
      try {
        await row.update(patch);
      } catch (err) {
        if (err instanceof UniqueConstraintError) throw conflict(`a product with key '${patch.key}' already exists`);
        throw err;
      }
      changed(id);
      return plain(row);
    },
    async delete(id) {
      const row = await ProductModel.findByPk(id);
      if (!row) throw notFound('product', id);
      const n = await Device.count({ where: { product_id: id } });
      if (n > 0) throw conflict(`product '${row.get('key')}' still has ${n} device(s); delete them first`);
      try {
        await row.destroy();
      } catch (err) {
        if (err instanceof ForeignKeyConstraintError) throw conflict(`product '${row.get('key')}' still has devices; delete them first`);
        throw err;
      }
      changed(id);
    },
  };
  return products;
}
