/** /api/alarms: list and filter, read, acknowledge, clear. */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import type { RouteTable } from './routes.ts';
import { principalOf } from './auth.ts';
import { idParam, page } from './schemas.ts';
import { ALARM_LEVELS, ALARM_STATES, type AlarmCenter } from '../alarms/index.ts';

export function alarmRoutes(_ctx: FluxContext, routes: RouteTable, center: AlarmCenter): void {
  routes
    .add({
      method: 'get', path: '/alarms', tag: 'alarms', role: 'viewer', summary: 'List alarms, newest first (filter by state, level, rule, device; paginated)',
      query: z.object({
        state: z.enum(ALARM_STATES as [string, ...string[]]).optional(),
        level: z.enum(ALARM_LEVELS as [string, ...string[]]).optional(),
        rule_id: z.uuid().optional(),
        device_id: z.string().max(64).optional(),
        ...page,
      }),
      returns: '`{ items, total, limit, offset }`',
      handler: ({ query }) => center.list(query as never),
    })
    .add({
      method: 'get', path: '/alarms/:id', tag: 'alarms', role: 'viewer', summary: 'Read an alarm', params: idParam, errors: [404],
      handler: ({ params }) => center.get(params.id),
    })
    .add({
      method: 'post', path: '/alarms/:id/ack', tag: 'alarms', role: 'operator', params: idParam, errors: [404, 409],
      summary: 'Acknowledge an active alarm, optionally with a `note` (what was done, who is on it); the alarm keeps who acknowledged it (`acked_by`) and the note (`ack_note`)',
      body: z.object({ note: z.string().trim().max(1000).optional() }),
      handler: ({ params, body, req }) => center.ack(params.id, { username: principalOf(req)?.username, note: body.note || null }),
    })
    .add({
      method: 'post', path: '/alarms/:id/clear', tag: 'alarms', role: 'operator', summary: 'Clear an alarm (active or acknowledged)', params: idParam, errors: [404],
      handler: ({ params }) => center.clear(params.id),
    });
}
