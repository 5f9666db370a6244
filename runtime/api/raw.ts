/** GET /api/devices/{id}/raw: a device's uplinks exactly as received, from the durable uplink log. */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import type { UplinkLog } from '../uplink-log/index.ts';
import { q, type RouteTable } from './routes.ts';
import { idParam } from './schemas.ts';

const time = z.union([q.int(0, 8.64e15), z.iso.datetime({ offset: true }).transform((s) => Date.parse(s))]);

/**
 * Payload bytes of one page, besides `limit`: 1,000 uplinks of 256 KiB made a 525 MB answer that
 * held ~1.9 GB and the main thread for seconds per request (three at once: 4 GB, /api/health unanswered).
 */
export const RAW_PAGE_BYTES = 8 * 1024 * 1024;

export function rawRoutes(ctx: FluxContext, routes: RouteTable, log: UplinkLog): void {
  routes.add({
    method: 'get', path: '/devices/:id/raw', tag: 'trace', role: 'viewer', errors: [404, 503],
    summary: 'Raw uplinks of a device as received (oldest first, paginated with `after`; `order=desc`: newest first, paginated with `before`; a page holds `limit` uplinks or about 8 MiB of payload, whichever comes first), kept FLUX_RAW_RETENTION / FLUX_RAW_MAX_BYTES; each links to its trace (cluster mode: read from the shared log; the trace is on the node that processed it; 503 `log_unavailable` while NATS is unreachable)',
    params: idParam,
    query: z.object({
      from: time.optional(),
      to: time.optional(),
      limit: q.int(1, 1000).optional(),
      /** the `next` cursor of the previous page, oldest first */
      after: q.int(0, Number.MAX_SAFE_INTEGER).optional(),
      /** `desc`: newest first, the next page with `before` */
      order: z.enum(['asc', 'desc']).optional(),
      /** the `next` cursor of the previous page, newest first */
      before: q.int(0, Number.MAX_SAFE_INTEGER).optional(),
      encoding: z.enum(['hex', 'base64']).optional(),
    }),
    returns: '`{ items: [{ msg_id, seq, ts, transport, type, event_id, topic, bytes, payload, trace }], next, has_more }`',
    handler: async ({ params, query }) => {
      await ctx.registry.devices.get(params.id);
      const limit = query.limit ?? 100;
      const rows = await log.read({ deviceId: params.id, from: query.from, to: query.to, afterSeq: query.after, beforeSeq: query.before, order: query.order, limit: limit + 1, maxBytes: RAW_PAGE_BYTES });
      // a page cut by its bytes may have more after it (the next page says)
      const bytes = rows.reduce((n, r) => n + r.payload.length, 0);
      const more = rows.length > limit || bytes >= RAW_PAGE_BYTES;
      const page = rows.length > limit ? rows.slice(0, limit) : rows;
      const encoding = query.encoding ?? 'hex';
      return {
        items: page.map((r) => ({
          msg_id: r.id,
          seq: r.seq,
          ts: r.ts,
          transport: r.transport,
          type: r.type,
          event_id: r.eventId ?? null,
          topic: r.topic,
          bytes: r.payload.length,
          encoding,
          payload: r.payload.toString(encoding),
          trace: `/api/trace/${r.id}`,
        })),
        next: more ? page[page.length - 1]!.seq : null,
        has_more: more,
      };
    },
  });
}
