/** /api/products: create, read, list, update, delete. */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import type { RouteTable } from './routes.ts';
import { idParam, page, pluginId, productKey, thingModel } from './schemas.ts';
import { productTransportSchema, undeclaredProperties } from '../modbus/index.ts';
import { badRequest } from '../errors/index.ts';
import type { Product } from '../registry/index.ts';

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
  })
  .strict();

/** A register map may name only properties of the thing model (when the model declares properties). */
function checkRegisterMap(next: { metadata?: Product['metadata']; transport?: Record<string, unknown> }): void {
  const modbus = next.transport?.modbus as { registers: { property: string }[] } | undefined;
  if (!modbus) return;
  const missing = undeclaredProperties(modbus, next.metadata);
  if (missing.length) throw badRequest(`body.transport.modbus.registers: ${missing.map((p) => `'${p}'`).join(', ')} ${missing.length > 1 ? 'are' : 'is'} not a property of the thing model (metadata.properties)`);
}

export function productRoutes(ctx: FluxContext, routes: RouteTable): void {
  const products = ctx.registry.products;
  routes
    .add({
      method: 'post', path: '/products', tag: 'products', role: 'operator', summary: 'Create a product', body: productBody, status: 201, errors: [409],
      returns: 'the product',
      handler: ({ body }) => {
        checkRegisterMap(body);
        return products.create(body);
      },
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
      body: productBody.partial().strict().refine((b) => Object.keys(b).length > 0, 'nothing to update'),
      handler: async ({ params, body }) => {
        const current = await products.get(params.id);
        checkRegisterMap({ metadata: body.metadata ?? current.metadata, transport: body.transport ?? current.transport });
        return products.update(current.id, body);
      },
    })
    .add({
      method: 'put', path: '/products/:id', tag: 'products', role: 'operator', summary: 'Replace a product', params: idParam, errors: [404, 409], body: productBody,
      handler: async ({ params, body }) => {
        checkRegisterMap(body);
        return products.update((await products.get(params.id)).id, { description: null, protocol_plugin_id: null, metadata: {}, transport: {}, auto_register_children: false, child_product_id: null, ...body });
      },
    })
    .add({
      method: 'delete', path: '/products/:id', tag: 'products', role: 'operator', summary: 'Delete a product (refused while it has devices)', params: idParam, status: 204, errors: [404, 409],
      handler: async ({ params }) => {
        await products.delete((await products.get(params.id)).id);
      },
    });
}
