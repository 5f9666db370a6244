/** /api/products: create, read, list, update, delete. */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import { parseBody, type RouteTable } from './routes.ts';
import { idParam, page, pluginId, productKey, thingModel } from './schemas.ts';
import { productTransportSchema, undeclaredProperties } from '../modbus/index.ts';
import { badRequest } from '../errors/index.ts';
import type { Product } from '../registry/index.ts';
import type { PluginHost } from '../plugins/index.ts';
import { createReferences } from './references.ts';

const productBody = z
  .object({
    key: productKey,
    name: z.string().min(1).max(200),
    description: z.string().max(1000).nullable().optional(),
    protocol_plugin_id: pluginId.nullable().optional(),
    metadata: thingModel.optional(),
    transport: productTransportSchema.optional(),
    auto_register_children: z.boolean().optional(),
    child_product_id: z.string().min(1).max(64).nullable().optional(),
    protocol_plugin_wasm_base64: z
      .string()
      .max(1_000_000)
      .regex(/^[A-Za-z0-9+/=\s]*$/, 'must be base64')
      .optional()
      .describe('a plugin module to install as `protocol_plugin_id` in the same request (like PUT /api/plugins/{id}), before the product is stored'),
  })
  .strict();

/** A register map may name only properties of the thing model (when the model declares properties). */
function checkRegisterMap(next: { metadata?: Product['metadata']; transport?: Record<string, unknown> }): void {
  const modbus = next.transport?.modbus as { registers: { property: string }[] } | undefined;
  if (!modbus) return;
  const missing = undeclaredProperties(modbus, next.metadata);
  if (missing.length) throw badRequest(`body.transport.modbus.registers: ${missing.map((p) => `'${p}'`).join(', ')} ${missing.length > 1 ? 'are' : 'is'} not a property of the thing model (metadata.properties)`);
}

const productPatch = productBody.partial().strict().refine((b) => Object.keys(b).length > 0, 'nothing to update');

/** Product writes with their checks, shared by the REST routes and the GraphQL mutations. */
export interface ProductWrites {
  create(body: unknown): Promise<Product>;
  /** PATCH semantics: only the fields given change */
  update(idOrKey: string, patch: unknown): Promise<Product>;
  delete(idOrKey: string): Promise<void>;
}

export function productWrites(ctx: FluxContext, plugins: PluginHost): ProductWrites {
  const products = ctx.registry.products;
  const refs = createReferences(ctx, plugins);

  /** Installs the plugin sent along, checks what the body names; answers the body to store. */
  async function references<B extends { protocol_plugin_id?: string | null; child_product_id?: string | null; protocol_plugin_wasm_base64?: string }>(body: B): Promise<Omit<B, 'protocol_plugin_wasm_base64'>> {
    const { protocol_plugin_wasm_base64: wasm, ...rest } = body;
    if (wasm !== undefined) {
      if (!rest.protocol_plugin_id) throw badRequest('body.protocol_plugin_wasm_base64: give protocol_plugin_id, the id to install the module as');
      await plugins.install(rest.protocol_plugin_id, Buffer.from(wasm, 'base64'), 'api');
    }
    if (rest.protocol_plugin_id) refs.plugin('body.protocol_plugin_id', rest.protocol_plugin_id);
    if (rest.child_product_id) rest.child_product_id = (await refs.product('body.child_product_id', rest.child_product_id)).id;
    return rest;
  }

  return {
    async create(raw) {
      const body = parseBody(productBody, raw);
      checkRegisterMap(body);
      return products.create(await references(body));
    },
    async update(idOrKey, raw) {
      const body = parseBody(productPatch, raw);
      const current = await products.get(idOrKey);
      checkRegisterMap({ metadata: body.metadata ?? current.metadata, transport: body.transport ?? current.transport });
      return products.update(current.id, await references(body));
    },
    async delete(idOrKey) {
      await products.delete((await products.get(idOrKey)).id);
    },
  };
}

export function productRoutes(ctx: FluxContext, routes: RouteTable, plugins: PluginHost): void {
  const products = ctx.registry.products;
  const writes = productWrites(ctx, plugins);
  routes
    .add({
      method: 'post', path: '/products', tag: 'products', role: 'operator', summary: 'Create a product; `protocol_plugin_id` must name an installed plugin, or come with its module in `protocol_plugin_wasm_base64` (400 `unknown_reference` otherwise)', body: productBody, status: 201, errors: [409, 413],
      returns: 'the product',
      handler: ({ body }) => writes.create(body),
    })
    .add({
      method: 'get', path: '/products', tag: 'products', role: 'viewer', summary: 'List products (filter by key, text, plugin; paginated)',
      query: z.object({ key: z.string().optional(), q: z.string().max(200).optional(), protocol_plugin_id: z.string().optional(), ...page }),
      returns: '`{ items, total, limit, offset }`',
      handler: ({ query }) => products.list(query),
    })
    .add({
      method: 'get', path: '/products/:id', tag: 'products', role: 'viewer', summary: 'Read a product by id or key', params: idParam, errors: [404],
      handler: ({ params }) => products.get(params.id),
    })
    .add({
      method: 'patch', path: '/products/:id', tag: 'products', role: 'operator', summary: 'Update a product', params: idParam, errors: [404, 409],
      body: productPatch,
      handler: ({ params, body }) => writes.update(params.id, body),
    })
    .add({
      method: 'put', path: '/products/:id', tag: 'products', role: 'operator', summary: 'Replace a product', params: idParam, errors: [404, 409], body: productBody,
      handler: ({ params, body }) => writes.update(params.id, { description: null, protocol_plugin_id: null, metadata: {}, transport: {}, auto_register_children: false, child_product_id: null, ...body }),
    })
    .add({
      method: 'delete', path: '/products/:id', tag: 'products', role: 'operator', summary: 'Delete a product (refused while it has devices)', params: idParam, status: 204, errors: [404, 409],
      handler: ({ params }) => writes.delete(params.id),
    });
}
