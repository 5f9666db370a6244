/**
 * Device access over HTTP (docs/broker.md "HTTP uplink"): `POST /api/devices/{id}/uplink` for devices that cannot
 * hold a connection (authenticated by the device secret, not the admin token), and
 * `POST /api/devices/{id}/commands` (admin token) to send a command down to a device.
 */
import { newMessageId } from '../bus/index.ts';
import express, { type Request, type Response } from 'express';
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import { FluxError, unauthorized } from '../errors/index.ts';
import type { Downlink } from '../ingress/index.ts';
import type { RouteTable } from './routes.ts';
import { checkJsonDepth } from '../input-limits/index.ts';
import { idParam } from './schemas.ts';
import type { LogRefusedError } from '../uplink-log/index.ts';

/** The largest HTTP uplink, whatever its content type: the MQTT packet limit (docs/broker.md). */
export const UPLINK_LIMIT_BYTES = 256 * 1024;
const readRaw = express.raw({ type: () => true, limit: UPLINK_LIMIT_BYTES });

/** The body as the device sent it (JSON included: passed on as bytes, never re-serialised), read only after the device authenticated. */
async function bodyBytes(req: Request, res: Response): Promise<Buffer> {
  await new Promise<void>((resolve, reject) => readRaw(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

export function deviceAccessRoutes(ctx: FluxContext, routes: RouteTable, downlink: Downlink): void {
  routes
    .add({
      method: 'post', path: '/devices/:id/uplink', tag: 'device access', auth: false, status: 202, errors: [401, 413, 503, 507],
      summary: 'Uplink from a device that cannot hold a connection: header `X-Device-Secret: <secret>`; body raw bytes (any content type) or JSON, at most 256 KiB (413 past it; JSON nested over 64 levels: 400 too_deep); `?type=properties` (default) or `?type=event&event=<eventId>`',
      params: idParam,
      query: z.object({ type: z.enum(['properties', 'event']).default('properties'), event: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/).optional() }).refine((q) => q.type !== 'event' || q.event, { message: 'event is required with type=event', path: ['event'] }),
      returns: '`{ id }` of the uplink: 202 means it is in the durable uplink log; 507 `log_full` when unprocessed uplinks fill FLUX_RAW_MAX_BYTES; 503 `log_unavailable` (cluster mode: the log engine unreachable or too slow) or `log_write_failed`, with Retry-After',
      handler: async ({ params, query, req, res }) => {
        const secret = req.get('x-device-secret');
        if (!secret) throw unauthorized('missing device secret: send X-Device-Secret: <device secret>');
        const identity = await ctx.registry.devices.authenticate(params.id, secret);
        if (!identity) throw unauthorized('unknown device or wrong device secret');
        if (!identity.device.enabled) throw new FluxError('device_disabled', `device '${params.id}' is disabled`, 403);
        if (ctx.journal.behind()) {
          res.setHeader('Retry-After', '1');
          throw new FluxError('busy', 'the pipeline is behind; retry shortly', 503);
        }
        const payload = await bodyBytes(req, res);
        const { device, product } = identity;
        // JSON (declared, or required because the product has no plugin) is refused here past the depth limit, not in the flow.
        if (req.is('json') || !product.protocol_plugin_id) checkJsonDepth(payload, 'the uplink');
        const id = newMessageId();
        const topic = query.type === 'event' ? `/${product.key}/${device.id}/event/${query.event}` : `/${product.key}/${device.id}/properties/report`;
        // 202 promises the uplink is in the durable log (runtime/uplink-log)
        const refused = await new Promise<LogRefusedError | null>((resolve) =>
          ctx.journal.accept({ id, deviceId: device.id, productId: product.id, productKey: product.key, type: query.type, eventId: query.event, ts: Date.now(), payload, topic, transport: 'http', logSeq: undefined }, resolve),
        );
        if (refused?.code === 'log_full') throw new FluxError('log_full', `uplink refused: ${refused.message}`, 507);
        if (refused) {
          // log_write_failed (the disk), log_unavailable (cluster mode: NATS unreachable or too slow)
          res.setHeader('Retry-After', '1');
          throw new FluxError(refused.code, `uplink refused: ${refused.message}`, 503);
        }
        return { id };
      },
    })
    .add({
      method: 'post', path: '/devices/:id/commands', tag: 'device access', role: 'operator', errors: [404, 409, 422, 503, 504],
      summary: "Send a command to a device: bytes from its product plugin's `encode` (JSON `{id, command, params, ts}` without one), over its TCP connection or MQTT `/{productKey}/{id}/command` (QoS 1). 200 delivered, 202 queued for a persistent session, 409 offline. In a cluster it goes through the node the device is connected to (503 that node cannot be reached, 504 it did not answer in time)",
      params: idParam,
      body: z.object({ command: z.string().min(1).max(128), params: z.unknown().optional() }).strict(),
      returns: '`{ status, id, device_id, transport, topic, bytes, encoding }`',
      handler: async ({ params, body, res }) => {
        const r = await downlink.send(params.id, body.command, body.params ?? {});
        if (r.status === 'offline') throw new FluxError('device_offline', `device '${params.id}' is offline: ${r.reason ?? 'no connection'}`, 409);
        // snake_case like every other answer (the downlink's result names it deviceId)
        const { deviceId, ...rest } = r;
        res.status(r.status === 'queued' ? 202 : 200).json({ ...rest, device_id: deviceId });
        return res;
      },
    });
}
