/** Telemetry history (docs/api.md): latest values, raw or aggregated ranges per device, device events, and CSV reports. */
import { z } from 'zod';
import type { Response } from 'express';
import type { FluxContext } from '../app/context.ts';
import { badRequest } from '../errors/index.ts';
import { q, type RouteTable } from './routes.ts';
import { idParam } from './schemas.ts';
import { parseTelemetryQuery, parseTime, type AggRow, type Sample, type Storage, type TelemetryQuery } from '../storage/index.ts';

const telemetryQuery = z.object({
  metric: z.string().max(2000).optional().describe('metric name, or several separated by commas (default: all)'),
  from: z.string().max(40).optional().describe('ISO 8601 or epoch ms, inclusive (default: `to` − 24 h)'),
  to: z.string().max(40).optional().describe('ISO 8601 or epoch ms, exclusive (default: now)'),
  interval: z.string().max(20).optional().describe('bucket width: ms, or 10s, 1m, 1h, 1d; set → aggregated answer'),
  agg: z.string().max(100).optional().describe('avg, min, max, sum, count, first, last (comma-separated; default avg)'),
  limit: z.string().max(10).optional().describe('at most this many items (1–100000, default 10000)'),
  order: z.string().max(4).optional().describe('raw values by time: asc (default) or desc'),
  offset: z.string().max(10).optional().describe('raw values: skip this many (0–1000000)'),
});

const eventsQuery = z.object({
  event: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/).optional().describe('only this event id'),
  from: z.string().max(40).optional().describe('ISO 8601 or epoch ms, inclusive (default: `to` − 24 h)'),
  to: z.string().max(40).optional().describe('ISO 8601 or epoch ms, exclusive (default: now)'),
  order: z.enum(['asc', 'desc']).optional().describe('by time: asc (default, oldest first) or desc'),
  limit: q.int(1, 10_000).optional().describe('at most this many items (default 1000)'),
});

const reportQuery = telemetryQuery.omit({ limit: true, order: true, offset: true }).extend({
  device: z.string().max(64).optional(),
  product: z.string().max(200).optional().describe('product id or key: every device of it'),
});

async function query(storage: Storage, device: string, q: TelemetryQuery): Promise<Sample[] | AggRow[]> {
  if (q.interval !== undefined) return storage.store.aggregate({ device, metrics: q.metrics, from: q.from, to: q.to, interval: q.interval, aggs: q.aggs, limit: q.limit });
  return storage.store.range({ device, metrics: q.metrics, from: q.from, to: q.to, limit: q.limit, order: q.order, offset: q.offset });
}

/** What a report may have queued for its client before it waits for the socket to drain. */
const CSV_QUEUED_BYTES = 1024 * 1024;

/**
 * Writes `chunk`; past CSV_QUEUED_BYTES waits until the socket drained (or the client left): a
 * report may be far larger than a client reads per second, and must not wait in memory
 * (test/api/csv-backpressure.test.ts).
 */
function send(res: Response, chunk: string): Promise<void> | undefined {
  if (res.write(chunk) || res.destroyed || res.writableLength < CSV_QUEUED_BYTES) return undefined;
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * A text cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, a tab or CR first) gets a
 * leading `'`: metric names and string values come from devices, and a report is opened in Excel
 * or LibreOffice by people who did not write them. Numbers, and text that is a plain number, stay as they are.
 */
const FORMULA_START = /^[=+\-@\t\r]/;
const PLAIN_NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

const csvField = (v: unknown): string => {
  if (v === null || v === undefined) return '';
  let s = String(v);
  if (typeof v === 'string' && FORMULA_START.test(s) && !PLAIN_NUMBER.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function telemetryRoutes(ctx: FluxContext, routes: RouteTable, storage: Storage): void {
  routes
    .add({
      method: 'get', path: '/devices/:id/latest', tag: 'telemetry', role: 'viewer', summary: 'The newest stored value of each metric of a device', params: idParam, errors: [404, 503],
      returns: '`{ device_id, items: [{ metric, ts, value }], values: { metric: value } }`',
      handler: async ({ params }) => {
        await ctx.registry.devices.get(params.id);
        const items = await storage.store.latest(params.id);
        return { device_id: params.id, items, values: Object.fromEntries(items.map((s) => [s.metric, s.value])) };
      },
    })
    .add({
      method: 'get', path: '/devices/:id/telemetry', tag: 'telemetry', role: 'viewer', params: idParam, query: telemetryQuery, errors: [404, 503],
      summary: 'Stored telemetry of a device: raw values, or aggregates per interval when `interval` or `agg` is given',
      returns: '`{ device_id, from, to, interval?, agg?, items, truncated, next? }`; raw items `{ metric, ts, value }`, aggregated items `{ metric, ts (bucket start), <agg>: … }`; `truncated: true` when `limit` cut the answer, then raw answers give `next: { offset }` to continue',
      handler: async ({ params, query: raw }) => {
        const q = parseTelemetryQuery(raw);
        await ctx.registry.devices.get(params.id);
        // One more than asked: whether the answer was cut.
        const got = await query(storage, params.id, { ...q, limit: q.limit + 1 });
        const truncated = got.length > q.limit;
        const items = truncated ? got.slice(0, q.limit) : got;
        return {
          device_id: params.id,
          from: q.from,
          to: q.to,
          ...(q.interval !== undefined ? { interval: q.interval, agg: q.aggs } : {}),
          items,
          truncated,
          ...(truncated && q.interval === undefined ? { next: { offset: q.offset + q.limit } } : {}),
        };
      },
    })
    .add({
      method: 'get', path: '/devices/:id/events', tag: 'telemetry', role: 'viewer', params: idParam, query: eventsQuery, errors: [404, 503],
      summary: 'Stored events of a device (…/event/{eventId} uplinks), filtered by event id and time; `flagged` marks a payload that does not match the thing model',
      returns: '`{ device_id, from, to, items: [{ event_id, ts, payload, msg_id, flagged, problem }], has_more }`',
      handler: async ({ params, query: raw }) => {
        const to = parseTime(raw.to, 'to', Date.now());
        const from = parseTime(raw.from, 'from', to - 86_400_000);
        if (from >= to) throw badRequest('from must be before to');
        const device = await ctx.registry.devices.get(params.id);
        const limit = raw.limit ?? 1000;
        const got = await storage.store.events({ device: params.id, product: device.product_id, event: raw.event, from, to, order: raw.order, limit: limit + 1 });
        const items = got.slice(0, limit).map((e) => ({ event_id: e.event, ts: e.ts, payload: e.payload, msg_id: e.msg_id, flagged: e.flagged, problem: e.problem }));
        return { device_id: params.id, from, to, items, has_more: got.length > limit };
      },
    })
    .add({
      method: 'get', path: '/reports/telemetry.csv', tag: 'telemetry', role: 'viewer', query: reportQuery, errors: [404, 503], queryToken: true,
      summary: 'CSV report of a device or every device of a product: a header row, then one row per device, time (bucket) and metric. A download link may carry the token as `?access_token=`',
      returns: 'text/csv: `device_id,time,metric,value` (raw) or `device_id,time,metric,<agg>…` (aggregated)',
      handler: async ({ query: raw, res }) => {
        if (!raw.device === !raw.product) throw badRequest('give exactly one of device or product');
        const q = parseTelemetryQuery({ ...raw, limit: '100000' });
        let devices: string[];
        if (raw.device) devices = [(await ctx.registry.devices.get(raw.device)).id];
        else {
          const product = await ctx.registry.products.get(raw.product!);
          devices = [];
          for (let offset = 0; ; offset += 1000) {
            const page = await ctx.registry.devices.list({ product_id: product.id, limit: 1000, offset });
            devices.push(...page.items.map((d) => d.id));
            if (page.items.length < 1000) break;
          }
          devices.sort();
        }
        const aggregated = q.interval !== undefined;
        const name = raw.device ?? raw.product!;
        res.status(200).type('text/csv; charset=utf-8').setHeader('content-disposition', `attachment; filename="telemetry-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.csv"`);
        await send(res, ['device_id', 'time', 'metric', ...(aggregated ? q.aggs : ['value'])].join(',') + '\r\n');
        try {
          await reportRows(res, devices, storage, q, aggregated);
        } catch (err) {
          // the 200 and part of the report are out: the client must see a broken transfer, not wait for ever
          ctx.log.warn({ err: (err as Error).message }, 'CSV report failed after its first rows: the transfer is cut');
          res.destroy();
          return res;
        }
        res.end();
        return res;
      },
    });
}

/** The report's rows, device by device (the client may leave between two devices). */
async function reportRows(res: Response, devices: string[], storage: Storage, q: TelemetryQuery, aggregated: boolean): Promise<void> {
  for (const device of devices) {
    if (res.destroyed) return; // the client left: no more queries for nobody
    const items = (await query(storage, device, q)) as (Sample & AggRow)[];
    // One row per device, time (bucket) and metric, in that order.
    items.sort((a, b) => a.ts - b.ts || (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : 0));
    let chunk = '';
    for (const it of items) {
      const cells = aggregated ? q.aggs.map((a) => it[a]) : [it.value];
      chunk += [device, new Date(it.ts).toISOString(), it.metric, ...cells].map(csvField).join(',') + '\r\n';
      if (chunk.length > 64 * 1024) {
        await send(res, chunk);
        chunk = '';
      }
    }
    if (chunk) await send(res, chunk);
  }
}
