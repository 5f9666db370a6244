/**
 * A tiny route table over express: each route declares its zod schemas once, and the same
 * declaration validates requests and produces the OpenAPI document (GET /api/openapi.json).
 */
import express, { type Request, type Response, type NextFunction } from 'express';
import { z, type ZodType } from 'zod';
import { FluxError, badRequest } from '../errors/index.ts';
import { AUTHENTICATED_BODY_LIMIT, PUBLIC_BODY_LIMIT, checkRequestNul, jsonBody } from './body.ts';
import { checkNoNul } from '../input-limits/index.ts';
import type { Role } from '../users/index.ts';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteInput<B, Q, P> {
  body: B;
  query: Q;
  params: P;
  req: Request;
  res: Response;
}

export interface RouteSpec<B = unknown, Q = unknown, P = unknown> {
  method: Method;
  /** express-style path relative to /api, e.g. `/devices/:id` */
  path: string;
  summary: string;
  tag: string;
  body?: ZodType<B>;
  query?: ZodType<Q>;
  params?: ZodType<P>;
  /** A non-JSON request body (e.g. `application/wasm`): the handler gets it as a Buffer in `body`. */
  rawBody?: { contentTypes: string[]; limit: string };
  /** default true: needs `Authorization: Bearer <token>`; false: open to anyone (then no `role`) */
  auth?: boolean;
  /**
   * The least role that may call it (viewer < operator < admin); every route with a token declares
   * one, else mount() throws. Reads are `viewer`; changes to devices, rules, alarms, streams are
   * `operator`; users, other people's tokens and the audit log are `admin`.
   */
  role?: Role;
  /** runs before authentication and the body (the login route's per-address limiter) */
  preflight?: express.RequestHandler;
  /** also let in a request this accepts without the token (a signed URL for `<video>` tags) */
  signed?: (req: Request) => boolean;
  /** default false: also take the token from `?access_token=` (downloads and WebSockets: browsers cannot send a header there) */
  queryToken?: boolean;
  /** the largest JSON body (default 1mb with a token, 16kb without); read only for routes that declare `body` */
  bodyLimit?: string;
  /** the success status (default 200; 201 for creations, 204 answers no body) */
  status?: number;
  /** description of the success answer for the OpenAPI document */
  returns?: string;
  /** extra documented error statuses besides 400/401 */
  errors?: number[];
  /** JSON answer is the returned value; return `undefined` with status 204, or write `res` yourself and return `res`. */
  handler(input: RouteInput<B, Q, P>): Promise<unknown> | unknown;
}

/**
 * A query parameter the route does not know is refused, naming it: a misspelt filter must not
 * silently answer everything. Routes with a signed URL read their own parameters (sig, mode…).
 */
function checkQueryKeys(r: RouteSpec<any, any, any>, query: Record<string, unknown>): void {
  if (r.signed) return;
  const shape = (r.query as { shape?: Record<string, unknown> } | undefined)?.shape;
  const known = new Set(shape ? Object.keys(shape) : []);
  if (r.queryToken) known.add('access_token');
  for (const key of Object.keys(query)) {
    if (!known.has(key)) {
      const list = [...known].sort();
      throw new FluxError('unknown_parameter', `query parameter '${key.slice(0, 64)}' is not known here (${list.length ? `known: ${list.join(', ')}` : 'this route takes none'})`, 400);
    }
  }
}

export function formatZodError(err: z.ZodError, where: string): string {
  return err.issues
    .slice(0, 5)
    .map((i) => {
      const at = i.path.length ? `${where}.${i.path.join('.')}` : where;
      return `${at}: ${i.message}`;
    })
    .join('; ');
}

function parse<T>(schema: ZodType<T> | undefined, value: unknown, where: string): T {
  if (!schema) return value as T;
  const r = schema.safeParse(value);
  if (!r.success) throw badRequest(formatZodError(r.error, where), r.error.issues);
  return r.data;
}

/** Validates a body against a route's schema outside a route (GraphQL mutations): 400 naming the field, like the route. */
export function parseBody<T>(schema: ZodType<T>, value: unknown): T {
  const out = parse(schema, value, 'body');
  checkNoNul(out, 'body');
  return out;
}

export class RouteTable {
  readonly routes: RouteSpec<any, any, any>[] = [];

  add<B, Q, P>(spec: RouteSpec<B, Q, P>): this {
    this.routes.push(spec as RouteSpec<any, any, any>);
    return this;
  }

  /**
   * Mounts every route on `router`; `authenticate(route, role)` guards the routes with auth !== false.
   * A body is read only after authentication, and only by routes that declare one.
   */
  mount(router: express.Router, authenticate: (route: RouteSpec<any, any, any>, role: Role) => express.RequestHandler): void {
    for (const r of this.routes) {
      if (r.auth !== false && !r.role) throw new Error(`API route ${r.method.toUpperCase()} ${r.path} declares no role (viewer, operator or admin)`);
      if (r.auth === false && r.role) throw new Error(`API route ${r.method.toUpperCase()} ${r.path} is public (auth: false) but declares a role`);
      const chain: express.RequestHandler[] = r.preflight ? [r.preflight] : [];
      const signed = r.signed;
      if (r.auth !== false) {
        const auth = authenticate(r, r.role!);
        chain.push(signed ? (req, res, next) => (signed(req) ? next() : auth(req, res, next)) : auth);
      }
      if (r.rawBody) chain.push(express.raw({ type: r.rawBody.contentTypes, limit: r.rawBody.limit }));
      else if (r.body) chain.push(jsonBody(r.bodyLimit ?? (r.auth === false ? PUBLIC_BODY_LIMIT : AUTHENTICATED_BODY_LIMIT)));
      chain.push(async (req: Request, res: Response, next: NextFunction) => {
        try {
          if (r.rawBody && !Buffer.isBuffer(req.body)) {
            throw badRequest(`request body must be sent with Content-Type ${r.rawBody.contentTypes.join(' or ')}`);
          }
          // Params first: an id that becomes a path answers invalid_id (runtime/safe-id) even when it holds a NUL.
          const params = parse(r.params, req.params, 'params');
          checkRequestNul(req);
          const body = r.rawBody ? req.body : parse(r.body, req.body ?? {}, 'body');
          if (!r.rawBody) checkNoNul(body, 'body');
          checkQueryKeys(r, req.query as Record<string, unknown>);
          const input = { body, query: parse(r.query, req.query, 'query'), params, req, res };
          const out = await r.handler(input);
          if (out === res || res.headersSent) return;
          const status = r.status ?? 200;
          if (status === 204 || out === undefined) res.status(status === 200 && out === undefined ? 204 : status).end();
          else res.status(status).json(out);
        } catch (err) {
          next(err);
        }
      });
      router[r.method](r.path, ...chain);
    }
  }

  /** The OpenAPI 3.1 document of every route. */
  openapi(info: { title: string; version: string }): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    const errorSchema = { $ref: '#/components/schemas/Error' };
    for (const r of this.routes) {
      const oaPath = '/api' + r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
      const summary = r.auth === false ? r.summary : `${r.summary} (role: ${r.role})`;
      const op: Record<string, unknown> = { summary, 'x-flux-role': r.role ?? 'public', tags: [r.tag], operationId: `${r.method}${oaPath.replace(/[^A-Za-z0-9]+/g, '_')}` };
      const parameters: unknown[] = [];
      for (const [where, schema] of [
        ['path', r.params],
        ['query', r.query],
      ] as const) {
        if (!schema) continue;
        const js = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, unknown>; required?: string[] };
        for (const [name, s] of Object.entries(js.properties ?? {})) {
          parameters.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema: s });
        }
      }
      if (parameters.length) op.parameters = parameters;
      if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: z.toJSONSchema(r.body, { io: 'input', unrepresentable: 'any' }) } } };
      if (r.rawBody) op.requestBody = { required: true, content: Object.fromEntries(r.rawBody.contentTypes.map((t) => [t, { schema: { type: 'string', format: 'binary' } }])) };
      const responses: Record<string, unknown> = { [String(r.status ?? 200)]: { description: r.returns ?? 'OK' } };
      responses['400'] = { description: 'invalid input', content: { 'application/json': { schema: errorSchema } } };
      if (r.auth !== false) {
        responses['401'] = { description: 'missing, wrong or expired bearer token', content: { 'application/json': { schema: errorSchema } } };
        responses['403'] = { description: `the token's role is below ${r.role}`, content: { 'application/json': { schema: errorSchema } } };
      }
      for (const s of r.errors ?? []) responses[String(s)] = { description: s === 404 ? 'not found' : s === 409 ? 'conflict' : 'error', content: { 'application/json': { schema: errorSchema } } };
      op.responses = responses;
      if (r.auth !== false) op.security = [{ bearer: [] }];
      (paths[oaPath] ??= {})[r.method] = op;
    }
    return {
      openapi: '3.1.0',
      info,
      servers: [{ url: '/' }],
      paths,
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a login session (POST /api/auth/login), a personal API token (POST /api/tokens) or FLUX_ADMIN_TOKEN' } },
        schemas: {
          Error: {
            type: 'object',
            required: ['error'],
            properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } },
          },
        },
      },
    };
  }
}

/** Query-string helpers: numbers and booleans arrive as strings. */
export const q = {
  int: (min: number, max: number) => z.coerce.number().int().min(min).max(max),
  bool: () => z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1'),
};
