/**
 * /api/devices: CRUD, secret rotation and gateways (a gateway's children, attach and detach).
 * The secret is answered once, at creation or rotation.
 */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import { parseBody, q, type RouteTable } from './routes.ts';
import type { Device } from '../registry/index.ts';
import { deviceId, idParam, page, secret } from './schemas.ts';
import { deviceTransportSchema } from '../modbus/index.ts';
import { badRequest } from '../errors/index.ts';
import { createReferences } from './references.ts';

const tags = z.record(z.string(), z.unknown());
/** the device's own transport settings: `modbus` is checked (host, port, unit, mode), others kept as given */
const transport = deviceTransportSchema.nullable();

/** A Modbus device names its endpoint, unless a gateway owns the connection (then it gives its unit). */
function checkModbusEndpoint(t: { modbus?: { host?: string } } | null | undefined, gatewayId: string | null | undefined): void {
  if (t?.modbus && !t.modbus.host && !gatewayId) {
    throw badRequest('body.transport.modbus.host: required unless the device reaches the bus through a gateway (gateway_id)');
  }
}

const deviceCreate = z.object({ id: deviceId.optional(), product_id: z.string().min(1).max(64), name: z.string().min(1).max(200).optional(), secret: secret.optional(), enabled: z.boolean().optional(), tags: tags.optional(), is_gateway: z.boolean().optional(), gateway_id: deviceId.nullable().optional(), transport: transport.optional() }).strict();
const devicePatch = z.object({ name: z.string().min(1).max(200).optional(), enabled: z.boolean().optional(), tags: tags.optional(), is_gateway: z.boolean().optional(), gateway_id: deviceId.nullable().optional(), transport: transport.optional() }).strict().refine((b) => Object.keys(b).length > 0, 'nothing to update');

/** Device writes with their checks, shared by the REST routes and the GraphQL mutations. */
export interface DeviceWrites {
  create(body: unknown): Promise<{ device: Device; secret: string }>;
  update(id: string, patch: unknown): Promise<Device>;
}

export function deviceWrites(ctx: FluxContext): DeviceWrites {
  const devices = ctx.registry.devices;
  const refs = createReferences(ctx);
  return {
    async create(raw) {
      const body = parseBody(deviceCreate, raw);
      checkModbusEndpoint(body.transport, body.gateway_id);
      await refs.product('body.product_id', body.product_id);
      if (body.gateway_id) await refs.device('body.gateway_id', body.gateway_id);
      return devices.create(body);
    },
    async update(id, raw) {
      const body = parseBody(devicePatch, raw);
      if (body.gateway_id) await refs.device('body.gateway_id', body.gateway_id);
      if (body.transport?.modbus) checkModbusEndpoint(body.transport, body.gateway_id !== undefined ? body.gateway_id : (await devices.get(id)).gateway_id);
      return devices.update(id, body);
    },
  };
}

export function deviceRoutes(ctx: FluxContext, routes: RouteTable): void {
  const devices = ctx.registry.devices;
  const refs = createReferences(ctx);
  const writes = deviceWrites(ctx);
  routes
    .add({
      method: 'post', path: '/devices', tag: 'devices', role: 'operator', summary: 'Create a device; the answer holds its secret, shown only this once. `is_gateway` marks a gateway; `gateway_id` attaches it to one (an unknown product or gateway: 400 `unknown_reference`)', status: 201, errors: [409],
      body: deviceCreate,
      returns: 'the device plus `secret`',
      handler: async ({ body }) => {
        const { device, secret } = await writes.create(body);
        return { ...device, secret };
      },
    })
    .add({
      method: 'get', path: '/devices', tag: 'devices', role: 'viewer', summary: 'List devices (filter by product id or key, status, enabled, is_gateway, gateway_id, text; paginated)',
      query: z.object({ product_id: z.string().optional(), status: z.enum(['online', 'offline']).optional(), enabled: q.bool().optional(), is_gateway: q.bool().optional(), gateway_id: deviceId.optional(), q: z.string().max(200).optional(), ...page }),
      handler: ({ query }) => devices.list(query),
    })
    .add({
      method: 'get', path: '/devices/:id', tag: 'devices', role: 'viewer', summary: 'Read a device', params: idParam, errors: [404],
      handler: ({ params }) => devices.get(params.id),
    })
    .add({
      method: 'patch', path: '/devices/:id', tag: 'devices', role: 'operator', summary: 'Update a device (name, enabled, tags, transport, is_gateway, gateway_id: an id attaches, null detaches)', params: idParam, errors: [404, 409],
      body: devicePatch,
      handler: ({ params, body }) => writes.update(params.id, body),
    })
    .add({
      method: 'delete', path: '/devices/:id', tag: 'devices', role: 'operator', summary: 'Delete a device (refused while it is the gateway of other devices)', params: idParam, status: 204, errors: [404, 409],
      handler: async ({ params }) => {
        await devices.delete(params.id);
      },
    })
    .add({
      method: 'post', path: '/devices/:id/secret', tag: 'devices', role: 'operator', summary: 'Rotate the device secret (generated unless given); answers the new secret once', params: idParam, errors: [404],
      body: z.object({ secret: secret.optional() }).strict(),
      handler: async ({ params, body }) => {
        const { device, secret } = await devices.rotateSecret(params.id, body.secret);
        return { ...device, secret };
      },
    })
    .add({
      method: 'get', path: '/devices/:id/children', tag: 'devices', role: 'viewer', summary: "List a gateway's children (devices whose gateway_id names it; paginated)", params: idParam, errors: [404],
      query: z.object({ ...page }),
      returns: '`{ items, total, limit, offset }`',
      handler: ({ params, query }) => devices.children(params.id, query),
    })
    .add({
      method: 'put', path: '/devices/:id/gateway', tag: 'devices', role: 'operator', summary: 'Attach the device to a gateway (a device with is_gateway; no cycles)', params: idParam, errors: [404, 409],
      body: z.object({ gateway_id: deviceId }).strict(),
      handler: async ({ params, body }) => {
        await devices.get(params.id);
        await refs.device('body.gateway_id', body.gateway_id);
        return devices.update(params.id, { gateway_id: body.gateway_id });
      },
    })
    .add({
      method: 'delete', path: '/devices/:id/gateway', tag: 'devices', role: 'operator', summary: 'Detach the device from its gateway (it then speaks only for itself)', params: idParam, errors: [404],
      handler: ({ params }) => devices.update(params.id, { gateway_id: null }),
    });
}
