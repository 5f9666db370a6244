/** /api/devices: CRUD and secret rotation. The secret is answered once, at creation or rotation. */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import { q, type RouteTable } from './routes.ts';
import { deviceId, idParam, page, secret } from './schemas.ts';

const tags = z.record(z.string(), z.unknown());

export function deviceRoutes(ctx: FluxContext, routes: RouteTable): void {
  const devices = ctx.registry.devices;
  routes
    .add({
      method: 'post', path: '/devices', tag: 'devices', summary: 'Create a device; the answer holds its secret, shown only this once', status: 201, errors: [404, 409],
      body: z.object({ id: deviceId.optional(), product_id: z.string().min(1).max(64), name: z.string().min(1).max(200).optional(), secret: secret.optional(), enabled: z.boolean().optional(), tags: tags.optional() }).strict(),
      returns: 'the device plus `secret`',
      handler: async ({ body }) => {
        const { device, secret } = await devices.create(body);
        return { ...device, secret };
      },
    })
    .add({
      method: 'get', path: '/devices', tag: 'devices', summary: 'List devices (filter by product id or key, status, enabled, text; paginated)',
      query: z.object({ product_id: z.string().optional(), status: z.enum(['online', 'offline']).optional(), enabled: q.bool().optional(), q: z.string().max(200).optional(), ...page }),
      handler: ({ query }) => devices.list(query),
    })
    .add({
      method: 'get', path: '/devices/:id', tag: 'devices', summary: 'Read a device', params: idParam, errors: [404],
      handler: ({ params }) => devices.get(params.id),
    })
    .add({
      method: 'patch', path: '/devices/:id', tag: 'devices', summary: 'Update a device (name, enabled, tags)', params: idParam, errors: [404],
      body: z.object({ name: z.string().min(1).max(200).optional(), enabled: z.boolean().optional(), tags: tags.optional() }).strict().refine((b) => Object.keys(b).length > 0, 'nothing to update'),
      handler: ({ params, body }) => devices.update(params.id, body),
    })
    .add({
      method: 'delete', path: '/devices/:id', tag: 'devices', summary: 'Delete a device', params: idParam, status: 204, errors: [404],
      handler: async ({ params }) => {
        await devices.delete(params.id);
      },
    })
    .add({
      method: 'post', path: '/devices/:id/secret', tag: 'devices', summary: 'Rotate the device secret (generated unless given); answers the new secret once', params: idParam, errors: [404],
      body: z.object({ secret: secret.optional() }).strict(),
      handler: async ({ params, body }) => {
        const { device, secret } = await devices.rotateSecret(params.id, body.secret);
        return { ...device, secret };
      },
    });
}
