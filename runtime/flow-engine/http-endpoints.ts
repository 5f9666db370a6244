/**
 * REST endpoints that flows expose with `http in` nodes: served under one prefix
 * (FLUX_FLOWS_HTTP_PREFIX, default `/flows`), each with an auth choice, listed for clients, and
 * refused at deploy when their path would shadow FLUX's own (`/api`, `/editor`, `/console`, `/mqtt`).
 *
 * The auth choice is the node's `auth` property (set in the http in node's dialog,
 * runtime/flow-engine/theme/http-auth.js, or in the flow JSON): `public` (default, anyone), `device` (a device's id and secret:
 * `X-Device-Id` + `X-Device-Secret`, or HTTP Basic id:secret) or `token` (the admin token as
 * `Authorization: Bearer`: a login session, an API token or the admin token, whose role is at least
 * the node's `role`; the flow sees `msg.req.fluxUser`).
 */
import express, { type RequestHandler } from 'express';
import type { Registry } from '../registry/index.ts';
import { ROLES, roleAtLeast, type Principal, type Role } from '../users/index.ts';

export type EndpointAuth = 'public' | 'device' | 'token';
export const ENDPOINT_AUTHS: readonly EndpointAuth[] = ['public', 'device', 'token'];
/** The error code of flows refused for their http in paths or auth choices (deploy, project import). */
export const FLOW_PATH_RESERVED = 'flow_path_reserved';

/** FLUX's own roots: a flow endpoint may not start with them (served under the prefix it would only confuse). */
export const RESERVED_ROOTS = ['/api', '/editor', '/console', '/mqtt'] as const;

export interface FlowEndpoint {
  /** the http in node's id and name */
  node: string;
  name: string;
  method: string;
  /** the node's url, as written */
  url: string;
  /** where it is served: prefix + url */
  path: string;
  auth: EndpointAuth;
  /** token auth: the least role (viewer < operator < admin) */
  role: Role;
}

/** `/flows`, `/x/y` or `/` (root); anything else is refused by settings.ts. */
export function joinPath(prefix: string, url: string): string {
  const u = '/' + url.replace(/^\/+/, '');
  return prefix === '/' ? u : prefix + (u === '/' ? '' : u);
}

/** The http in nodes of a flow configuration (the deploy body or the running flows). */
export function endpointsOf(nodes: Iterable<Record<string, unknown>>, prefix: string): FlowEndpoint[] {
  const out: FlowEndpoint[] = [];
  for (const n of nodes) {
    if (n.type !== 'http in' || n.d === true) continue;
    const url = typeof n.url === 'string' ? n.url : '';
    const auth = (ENDPOINT_AUTHS as readonly string[]).includes(String(n.auth)) ? (n.auth as EndpointAuth) : 'public';
    out.push({ node: String(n.id), name: typeof n.name === 'string' ? n.name : '', method: String(n.method || 'get').toLowerCase(), url, path: joinPath(prefix, url), auth, role: (ROLES as readonly string[]).includes(String(n.role)) ? (n.role as Role) : 'admin' });
  }
  return out;
}

/** Why each endpoint cannot be deployed: a path under a reserved root, or an unknown auth choice. */
export function refusals(nodes: Iterable<Record<string, unknown>>, prefix: string): string[] {
  const out: string[] = [];
  for (const n of nodes) {
    if (n.type !== 'http in' || n.d === true) continue;
    const url = '/' + String(n.url ?? '').replace(/^\/+/, '');
    const label = `http in node '${String(n.name || n.id)}' (${String(n.method || 'get').toUpperCase()} ${url})`;
    for (const root of RESERVED_ROOTS) {
      const served = joinPath(prefix, url);
      const hit = (p: string) => p === root || p.startsWith(root + '/');
      if (hit(url) || hit(served)) out.push(`${label}: the path ${hit(served) ? served : url} is under ${root}, which FLUX serves; choose another path (flow endpoints are served under ${prefix})`);
    }
    if (n.auth !== undefined && n.auth !== '' && !(ENDPOINT_AUTHS as readonly string[]).includes(String(n.auth))) out.push(`${label}: auth '${String(n.auth)}' is not one of ${ENDPOINT_AUTHS.join(', ')}`);
    if (n.auth === 'token' && n.role !== undefined && n.role !== '' && !(ROLES as readonly string[]).includes(String(n.role))) out.push(`${label}: role '${String(n.role)}' is not one of ${ROLES.join(', ')}`);
  }
  return out;
}

/** Express-style path match (`:param` is one segment, `*` the rest). */
function matches(pattern: string, path: string): boolean {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('/').filter(Boolean);
  for (let i = 0; i < p.length; i++) {
    const seg = p[i]!;
    if (seg === '*' || seg.endsWith('*')) return true;
    if (i >= s.length) return false;
    if (seg.startsWith(':')) continue;
    if (seg !== s[i]) return false;
  }
  return p.length === s.length;
}

export function findEndpoint(endpoints: FlowEndpoint[], method: string, path: string): FlowEndpoint | undefined {
  const m = method.toLowerCase();
  return endpoints.find((e) => (e.method === m || e.method === 'all' || (m === 'head' && e.method === 'get')) && matches(e.url, path));
}

const fail = (res: express.Response, status: number, code: string, message: string) => {
  if (status === 401) res.setHeader('WWW-Authenticate', 'Bearer, Basic realm="flux device"');
  res.status(status).json({ error: { code, message } });
};

/**
 * Checks each request against the auth choice of the endpoint it reaches (mounted before Node-RED's
 * httpNode under the prefix, so `req.path` is the node's url). A device that authenticated is
 * `req.fluxDevice` (msg.req.fluxDevice in the flow).
 */
export function endpointAuth(deps: { endpoints: () => FlowEndpoint[]; registry: Registry; authenticate: (token: string) => Promise<Principal | null> }): RequestHandler {
  return (req, res, next) => {
    const ep = findEndpoint(deps.endpoints(), req.method, req.path);
    if (!ep || ep.auth === 'public') return next();
    if (ep.auth === 'token') {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      if (!m) return fail(res, 401, 'unauthorized', `this flow endpoint needs a token with role ${ep.role}: Authorization: Bearer <token>`);
      deps.authenticate(m[1]!).then(
        (p) => {
          if (!p) return fail(res, 401, 'unauthorized', 'invalid or expired bearer token');
          if (!roleAtLeast(p.role, ep.role)) return fail(res, 403, 'forbidden', `this flow endpoint needs the ${ep.role} role; the token's role is ${p.role}`);
          (req as unknown as { fluxUser: unknown }).fluxUser = { username: p.username, role: p.role };
          next();
        },
        (err: Error) => next(err),
      );
      return;
    }
    let id = req.headers['x-device-id'];
    let secret = req.headers['x-device-secret'];
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (basic) [id, secret] = Buffer.from(basic[1]!, 'base64').toString('utf8').split(/:(.*)/s, 2);
    if (typeof id !== 'string' || typeof secret !== 'string' || !id || !secret) return fail(res, 401, 'unauthorized', 'this flow endpoint needs a device: X-Device-Id and X-Device-Secret (or HTTP Basic id:secret)');
    deps.registry.devices.authenticate(id.slice(0, 64), secret.slice(0, 200)).then(
      (identity) => {
        if (!identity || !identity.device.enabled) return fail(res, 401, 'unauthorized', 'unknown device or wrong secret');
        (req as unknown as { fluxDevice: unknown }).fluxDevice = { id: identity.device.id, product_id: identity.product.id, product_key: identity.product.key };
        next();
      },
      (err: Error) => next(err),
    );
  };
}

/** requests to flow endpoints waiting for their flow's answer at once, at most */
export const FLOW_REQUESTS_MAX = 1000;

/**
 * Bounds the requests that flows have not answered: Node-RED keeps a request open until an `http
 * response` node answers it, which never happens when the flow has none on that path, drops the
 * message, or is being redeployed as it arrives. Each gets 504 `flow_timeout` after `timeoutMs`;
 * past `max` waiting, a new one gets 503 `flows_busy` at once (a public endpoint is open to anyone).
 */
export function flowRequestBounds(opts: { timeoutMs: number; max?: number }): RequestHandler {
  const max = opts.max ?? FLOW_REQUESTS_MAX;
  let waiting = 0;
  return (_req, res, next) => {
    if (waiting >= max) {
      res.setHeader('Retry-After', '1');
      return fail(res, 503, 'flows_busy', `${max} requests to flow endpoints already wait for their flows' answers`);
    }
    waiting++;
    const timer = setTimeout(() => {
      if (!res.headersSent) fail(res, 504, 'flow_timeout', `the flow did not answer within ${opts.timeoutMs} ms (no http response node reached, or the flows were being redeployed)`);
    }, opts.timeoutMs);
    const done = () => {
      clearTimeout(timer);
      waiting--;
      res.off('finish', done);
      res.off('close', done);
    };
    res.on('finish', done);
    res.on('close', done);
    next();
  };
}

/** Refuses a deploy (POST /editor/flows) whose http in nodes collide or name an unknown auth: 400 naming node and path. */
export function deployGuard(prefix: string): RequestHandler[] {
  return [
    express.json({ limit: '5mb' }),
    (req, res, next) => {
      // Node-RED's own body parser skips a request marked read; express 5's parser no longer marks it.
      (req as unknown as { _body: boolean })._body = true;
      const body = req.body as unknown;
      // POST /flows: [nodes] or { flows: [nodes] }; POST /flow and PUT /flow/:id: { nodes: [...], configs: [...] }
      const b = body as { flows?: unknown; nodes?: unknown; configs?: unknown };
      const nodes = Array.isArray(body) ? body : Array.isArray(b?.flows) ? b.flows : [...(Array.isArray(b?.nodes) ? b.nodes : []), ...(Array.isArray(b?.configs) ? b.configs : [])];
      const problems = refusals(nodes.filter((n): n is Record<string, unknown> => typeof n === 'object' && n !== null), prefix);
      if (problems.length === 0) return next();
      // Node-RED's editor shows `message` of a refused deploy.
      res.status(400).json({ code: FLOW_PATH_RESERVED, message: problems.join('; '), error: { code: FLOW_PATH_RESERVED, message: problems.join('; ') } });
    },
  ];
}

/** The deployed endpoints as an OpenAPI 3.1 document (GET /api/flows/openapi.json). */
export function endpointsOpenApi(endpoints: FlowEndpoint[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const e of endpoints) {
    const oaPath = e.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const params = [...e.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const security = e.auth === 'token' ? [{ bearer: [] }] : e.auth === 'device' ? [{ device: [] }] : [];
    const methods = e.method === 'all' ? ['get', 'post', 'put', 'patch', 'delete'] : [e.method];
    for (const m of methods) {
      (paths[oaPath] ??= {})[m] = { summary: e.name || `${m.toUpperCase()} ${e.url}`, operationId: `flow_${e.node}_${m}`, parameters: params, security, 'x-flux-node': e.node, 'x-flux-auth': e.auth, ...(e.auth === 'token' ? { 'x-flux-role': e.role } : {}), responses: { default: { description: "the flow's http response" } } };
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'FLUX flow endpoints', version },
    paths,
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, device: { type: 'http', scheme: 'basic', description: 'device id and secret (or X-Device-Id and X-Device-Secret headers)' } } },
  };
}
