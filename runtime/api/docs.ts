/**
 * Writes the REST API reference from the route table itself: docs/openapi.json and docs/api.md
 * (`npm run docs:api`). A test fails when the committed files differ from the code.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { RouteTable } from './routes.ts';

/** Error codes every route may answer (route-specific codes are named in the route's summary). */
export const ERROR_CODES: [code: string, status: number, meaning: string][] = [
  ['bad_request', 400, 'a field is invalid; the message names it'],
  ['unknown_parameter', 400, 'a query parameter the route does not know; the message names it and lists the known ones'],
  ['invalid_json', 400, 'the body is not valid JSON'],
  ['invalid_id', 400, 'an id that becomes a file or folder name is not a slug (`^[a-z0-9][a-z0-9_-]{0,63}$`); the message names the kind of id'],
  ['invalid_path', 400, 'a path built from the request would leave its folder'],
  ['too_deep', 400, 'JSON nested more than 64 levels (request bodies and uplinks)'],
  ['nul_character', 400, 'a NUL character (`\\u0000`) in a path or query parameter or in a JSON body string'],
  ['unknown_reference', 400, 'a body field names a product, device or plugin that does not exist; the message names the field and the value'],
  ['unauthorized', 401, 'missing, wrong, expired or revoked bearer token; a wrong user name or password at `POST /api/auth/login`'],
  ['forbidden', 403, "the token's role is below the route's (the `role` column); a token above its owner's role"],
  ['not_found', 404, 'no such resource or path'],
  ['conflict', 409, 'the resource is in a state that forbids this'],
  ['too_large', 413, 'the body is larger than the route accepts (docs/security.md lists every limit)'],
  ['unsupported_charset', 415, 'a JSON request body declared in a charset other than UTF-8'],
  ['flow_path_reserved', 400, "flows (a deploy in the editor, `POST /api/project/import`) with an `http in` path under `/api`, `/editor`, `/console` or `/mqtt`, or an unknown auth choice; the message names each node and path"],
  ['bad_range', 400, 'a time range whose `from` is after its `to`'],
  ['unknown_product', 400, 'a product named in the body does not exist'],
  ['no_active_version', 409, 'the plugin has no active version to compare a replay or shadow version with'],
  ['replay_running', 409, 'a replay of this plugin is running; cancel it (`DELETE /api/plugins/{id}/replay`) or wait'],
  ['shadow_running', 409, 'the plugin already has a shadow version; stop it first'],
  ['too_many_replays', 429, 'as many replays as the process runs at once (2) are running'],
  ['rate_limited', 429, 'too many failed logins from this client address; `Retry-After` says when to try again'],
  ['unavailable', 503, 'a service the route needs is not running (yet): the time-series store, the rule engine, the alarm center, the plugin host, device access'],
  ['flows_busy', 503, "a flow endpoint (`/flows/…`): 1,000 requests already wait for their flows' answers; `Retry-After` says when to try again"],
  ['flow_timeout', 504, 'a flow endpoint (`/flows/…`) whose flow did not answer within FLUX_FLOWS_HTTP_TIMEOUT_MS (no `http response` node reached, or the flows were being redeployed)'],
];

/** Prose sections after the route tables: payloads that no single route describes. */
const NOTES: string[] = [
  '## Device events',
  '',
  'A device reports an event by publishing to `/{product_key}/{device_id}/event/{eventId}` (MQTT, or `POST /api/devices/{id}/uplink?type=event&event={eventId}`).',
  'Without a protocol plugin the payload is any JSON object, e.g. `{"open": true}`; a numeric `ts` in it (epoch ms) is the event time, else the time of arrival.',
  'With a plugin, the `values` of each decoded message are the payload. An event is stored as an event, not as telemetry:',
  '`{ event_id, ts, payload, msg_id, flagged, problem }` (`GET /api/devices/{id}/events`; `msg_id` opens its trace at `GET /api/trace/{msg_id}`),',
  'kept as long as the product keeps telemetry (`metadata.storage.retention_days`); while the time-series database is away events wait in the on-disk',
  'buffer with the telemetry and are stored when it is back (docs/storage.md). Several events of one device in the same millisecond are all kept',
  '(each distinct event id and message id; a retried one once), on TDengine too. The thing model may declare events:',
  '`metadata.events: [{ id, name?, fields: [{ id, type, required? }] }]`; a payload that does not match (an undeclared event, a missing required',
  'field, a value not of its type, an undeclared field) is stored all the same with `flagged: true` and the reason in `problem`.',
  'Rules see it as `msg.event_id` and `msg.event` (the payload; `msg.values` is empty). The live feed `/api/ws` sends `{ type: "event", device_id,',
  'product_key, event_id, ts, payload, flagged, problem, msg_id }` to clients subscribed to `events=event` (optionally `event=<id>,…`);',
  'GraphQL subscribers of `events` get the same (docs/graphql.md).',
  '',
];

export function renderApiMarkdown(routes: RouteTable): string {
  const byTag = new Map<string, typeof routes.routes>();
  for (const r of routes.routes) (byTag.get(r.tag) ?? byTag.set(r.tag, []).get(r.tag)!).push(r);
  const lines = [
    '# REST API',
    '',
    'Generated from the route table (`npm run docs:api`); the machine-readable form is [openapi.json](openapi.json), also served at `GET /api/openapi.json`.',
    '',
    'GraphQL (queries, mutations, subscriptions) is at `/api/graphql` with the same tokens and roles (reads: viewer, mutations: operator): [graphql.md](graphql.md), schema [schema.graphql](schema.graphql).',
    '',
    'Every route needs `Authorization: Bearer <token>` unless its role is *public*: a login session (`POST /api/auth/login`), a',
    'personal API token (`POST /api/tokens`) or the break-glass `FLUX_ADMIN_TOKEN` (role admin). The `role` column is the least role',
    'that may call the route (viewer < operator < admin; docs/security.md): no or a bad token answers 401 `unauthorized`, a lower',
    'role 403 `forbidden`. Bodies are JSON unless noted. Errors are `{ "error": { "code", "message" } }` with 400 (invalid input,',
    'naming the field), 401, 403, 404, 409, 413 or 429; never a stack trace (codes: the table at the end).',
    '',
  ];
  for (const [tag, list] of byTag) {
    lines.push(`## ${tag}`, '', '| method | path | role | what | answers |', '| --- | --- | --- | --- | --- |');
    for (const r of list) {
      const p = '/api' + r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
      const extra = [r.rawBody ? `body: ${r.rawBody.contentTypes.join(' / ')}` : ''].filter(Boolean).join('; ');
      const answers = [`${r.status ?? 200}${r.returns ? ` ${r.returns}` : ''}`, ...(r.errors ?? []).map(String)].join(', ');
      lines.push(`| ${r.method.toUpperCase()} | \`${p}\` | ${r.auth === false ? '*public*' : r.role} | ${r.summary}${extra ? ` (${extra})` : ''} | ${answers.replace(/\|/g, '\\|')} |`);
    }
    lines.push('');
  }
  lines.push(...NOTES);
  lines.push('## Error codes', '', '| code | status | meaning |', '| --- | --- | --- |');
  for (const [code, status, meaning] of ERROR_CODES) lines.push(`| \`${code}\` | ${status} | ${meaning} |`);
  lines.push('');
  return lines.join('\n');
}

export function writeApiDocs(routes: RouteTable, version: string, dir: string): void {
  fs.writeFileSync(path.join(dir, 'openapi.json'), JSON.stringify(routes.openapi({ title: 'FLUX IOT API', version }), null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'api.md'), renderApiMarkdown(routes));
}
