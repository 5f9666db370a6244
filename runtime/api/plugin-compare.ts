/**
 * /api/plugins/{id}/replay and /api/plugins/{id}/shadow: a stored version of a plugin against the
 * active one, on recorded uplinks (replay) or on live traffic (shadow mode), compared and never
 * stored (runtime/plugin-compare).
 */
import { z } from 'zod';
import { REPLAY_LIMIT_MAX, replayBody, shadowBody, type PluginCompare } from '../plugin-compare/index.ts';
import { notFound } from '../errors/index.ts';
import { type RouteTable } from './routes.ts';
import { pluginId } from './schemas.ts';

const idOnly = z.object({ id: pluginId });
// 100000 -> '100,000' without Intl: formatting a number with Intl pages in ~4.7 MB of ICU data (docs/operations.md "Memory")
const thousands = (n: number) => String(n).replace(/\B(?=(\d{3})+$)/g, ',');

export function pluginCompareRoutes(routes: RouteTable, compare: PluginCompare): void {
  const { replays, shadows } = compare;
  routes
    .add({
      method: 'post', path: '/plugins/:id/replay', tag: 'plugins', role: 'operator',
      summary: `Replay recorded uplinks (the uplink log) received between \`from\` and \`to\` through stored version \`version\` (active or not) and compare each output with the active version's, re-decoded beside it; nothing is stored, no rule runs. \`limit\` frames (default 10,000, at most ${thousands(REPLAY_LIMIT_MAX)}), the first 100 diffs (counts exact). Waits for the result, or with \`wait: false\` answers 202 at once (follow it with GET). 409 \`replay_running\`/\`no_active_version\`, 429 \`too_many_replays\`, 400 \`bad_range\`/\`unknown_product\``,
      params: idOnly, errors: [404, 409, 429],
      body: replayBody,
      returns: '`{ job, plugin, version, active_version, state: running|done|cancelled|failed, total, same, different, failed, truncated, diffs: [{ msgId, deviceId, ts, before, after }], started_at, took_ms }`; before/after are `{ output }`, `{ output_preview, bytes }` (over 8 KiB) or `{ error: { cause, message } }`',
      handler: async ({ params, body, res }) => {
        const { report, done } = await replays.start(params.id, body);
        // a client that gave up waiting does not leave the replay running
        res.once('close', () => {
          if (!res.writableEnded && report.state === 'running') replays.cancel(params.id);
        });
        if (body.wait === false) {
          res.status(202).json(report);
          return res;
        }
        return done;
      },
    })
    .add({
      method: 'get', path: '/plugins/:id/replay', tag: 'plugins', role: 'viewer', summary: 'The running replay of a plugin with its progress (`total` so far), else its last one', params: idOnly, errors: [404],
      returns: 'the replay, as POST answers it',
      handler: ({ params }) => replays.status(params.id) ?? Promise.reject(notFound('replay of plugin', params.id)),
    })
    .add({
      method: 'delete', path: '/plugins/:id/replay', tag: 'plugins', role: 'operator', summary: 'Cancel the running replay of a plugin (its POST answers with `state: cancelled` and the counts so far)', params: idOnly, errors: [404],
      returns: 'the replay',
      handler: ({ params }) => replays.cancel(params.id) ?? Promise.reject(notFound('running replay of plugin', params.id)),
    })
    .add({
      method: 'post', path: '/plugins/:id/shadow', tag: 'plugins', role: 'operator', status: 201,
      summary: 'Shadow mode: stored version `version` decodes a `sample` (0–1, default 1) of the live frames of this plugin beside the active version; outputs are compared and counted, never stored. In memory: a restart ends it. 409 `shadow_running`/`no_active_version`',
      params: idOnly, errors: [404, 409],
      body: shadowBody,
      returns: '`{ plugin, version, active_version, sample, started_at, same, different, failed, dropped, queued, diffs }`',
      handler: ({ params, body }) => shadows.start(params.id, body),
    })
    .add({
      method: 'get', path: '/plugins/:id/shadow', tag: 'plugins', role: 'viewer', summary: 'The shadow version of a plugin: counters of same, different and failed frames, dropped samples, and the newest 50 diffs', params: idOnly, errors: [404],
      returns: 'the shadow, as POST answers it',
      handler: ({ params }) => shadows.status(params.id),
    })
    .add({
      method: 'delete', path: '/plugins/:id/shadow', tag: 'plugins', role: 'operator', summary: 'End shadow mode; the active version stays', params: idOnly, errors: [404],
      returns: 'the last counters',
      handler: ({ params }) => shadows.stop(params.id),
    })
    .add({
      method: 'post', path: '/plugins/:id/shadow/promote', tag: 'plugins', role: 'operator', summary: 'Make the shadow version the active one (the same hot swap as an install: no frame lost) and end shadow mode', params: idOnly, errors: [404],
      returns: '`{ promoted: the version now active, shadow: the last counters }`',
      handler: ({ params }) => shadows.promote(params.id),
    });
}
