/** /api/products: create, read, list, update, delete. */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import type { RouteTable } from './routes.ts';
import { idParam, page, pluginId, productKey, thingModel } from './schemas.ts';

const productBody = z
  .object({
    key: productKey,
    name: z.string().min(1).max(200),
    description: z.string().max(1000).nullable().optional(),
    protocol_plugin_id: pluginId.nullable().optional(),
    metadata: thingModel.optional(),
    transport: z.record(z.string(), z.unknown()).optional(),
    auto_register_children: z.boolean().optional(),
    child_product_id: z.string().min(1).max(64).nullable().optional(),
  })
  .strict();

export function productRoutes(ctx: FluxContext, routes: RouteTable): void {
  const products = ctx.registry.products;
  routes
    .add({
      method: 'post', path: '/products', tag: 'products', summary: 'Create a product', body: productBody, status: 201, errors: [409],
      returns: 'the product',
      handler: ({ body }) => products.create(body),
    })
    .add({
      method: 'get', path: '/products', tag: 'products', summary: 'List products (filter by key, text, plugin; paginated)',
      query: z.object({ key: z.string().optional(), q: z.string().max(200).optional(), protocol_plugin_id: z.string().optional(), ...page }),
      returns: '`{ items, total, limit, offset }`',
      handler: ({ query }) => products.list(query),
    })
    .add({
      method: 'get', path: '/products/:id', tag: 'products', summary: 'Read a product by id or key', params: idParam, errors: [404],
      handler: ({ params }) => products.get(params.id),
    })
    .add({
      method: 'patch', path: '/products/:id', tag: 'products', summary: 'Update a product', params: idParam, errors: [404, 409],
      body: productBody.partial().strict().refine((b) => Object.keys(b).length > 0, 'nothing to update'),
      handler: async ({ params, body }) => products.update((await products.get(params.id)).id, body),
    })
    .add({
      method: 'put', path: '/products/:id', tag: 'products', summary: 'Replace a product', params: idParam, errors: [404, 409], body: productBody,
      handler: async ({ params, body }) =>
        products.update((await products.get(params.id)).id, { description: null, protocol_plugin_id: null, metadata: {}, transport: {}, auto_register_children: false, child_product_id: null, ...body }),
    })
    .add({
      method: 'delete', path: '/products/:id', tag: 'products', summary: 'Delete a product (refused while it has devices)', params: idParam, status: 204, errors: [404, 409],
      handler: async ({ params }) => {
        await products.delete((await products.get(params.id)).id);
      },
    });
}
