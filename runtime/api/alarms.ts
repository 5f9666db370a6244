/** /api/alarms: list and filter, read, acknowledge, clear. */
import { z } from 'zod';
import type { FluxContext } from '../app/context.ts';
import type { RouteTable } from './routes.ts';
import { idParam, page } from './schemas.ts';
import { ALARM_LEVELS, ALARM_STATES, type AlarmCenter } from '../alarms/index.ts';

export function alarmRoutes(_ctx: FluxContext, routes: RouteTable, center: AlarmCenter): void {
  routes
    .add({
      method: 'get', path: '/alarms', tag: 'alarms', summary: 'List alarms, newest first (filter by state, level, rule, device; paginated)',
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
      method: 'get', path: '/alarms/:id', tag: 'alarms', summary: 'Read an alarm', params: idParam, errors: [404],
      handler: ({ params }) => center.get(params.id),
    })
    .add({
      method: 'post', path: '/alarms/:id/ack', tag: 'alarms', summary: 'Acknowledge an active alarm', params: idParam, errors: [404, 409],
      handler: ({ params }) => center.ack(params.id),
    })
    .add({
      method: 'post', path: '/alarms/:id/clear', tag: 'alarms', summary: 'Clear an alarm (active or acknowledged)', params: idParam, errors: [404],
      handler: ({ params }) => center.clear(params.id),
    });
}
