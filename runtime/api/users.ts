/**
 * /api/auth, /api/users, /api/tokens, /api/audit: logging in (a session token), users and roles,
 * personal API tokens (shown once, revocable), and the audit log (runtime/users).
 */
import { z } from 'zod';
import type { LoginLimiter } from '../login-limiter/index.ts';
import type { Request } from 'express';
import { FluxError, badRequest, conflict, notFound, unauthorized } from '../errors/index.ts';
import { ADMIN_TOKEN_PRINCIPAL, MAX_PASSWORD_LENGTH, ROLES, roleAtLeast, type Principal, type Role, type Users } from '../users/index.ts';
import { SLUG_MAX_LENGTH } from '../safe-id/index.ts';
import { clientAddress, principalOf } from './auth.ts';
import type { RouteTable } from './routes.ts';
import { page } from './schemas.ts';

const role = z.enum(ROLES as [Role, ...Role[]]);
const username = z.string().min(1).max(SLUG_MAX_LENGTH);
const password = z.string().max(MAX_PASSWORD_LENGTH);
const usernameParam = z.object({ username });
const tokenParam = z.object({ id: z.string().min(1).max(64) });

const who = (req: Request): Principal => principalOf(req)!;

export function userRoutes(users: Users, routes: RouteTable, limiter: LoginLimiter): void {
  const { accounts, audit } = users;
  const lastAdmin = async (name: string) => {
    const u = await accounts.get(name);
    return u.role === 'admin' && (await accounts.count('admin')) <= 1;
  };
  /**
   * Changes that may take an admin away run one at a time, each checked and made together: two at
   * once both passed the last-admin check and left no admin (test/users/last-admin-race.test.ts).
   * One process only; a cluster's nodes do not share this queue.
   */
  let adminChanges: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = adminChanges.then(fn, fn);
    adminChanges = run.catch(() => undefined);
    return run;
  };

  routes
    .add({
      method: 'post', path: '/auth/login', tag: 'users', auth: false, errors: [401, 429], preflight: limiter.guard(),
      summary: 'Log in with a user name and password: a session token for the API and /api/ws (`Authorization: Bearer`), valid until `expires_at`. Failures count per address (429 past the limit)',
      body: z.object({ username, password }),
      returns: '`{ token, expires_at, username, role }`',
      handler: async ({ body, req }) => {
        const user = await accounts.verify(body.username, body.password);
        const address = clientAddress(req);
        if (!user) {
          audit.record({ username: body.username.slice(0, 64), action: 'login_failed', target: 'api', status: 401, address });
          throw unauthorized('wrong user name or password');
        }
        const s = await accounts.startSession(user, users.sessionTtlMs);
        audit.record({ username: user.username, role: user.role, action: 'login', target: 'api', status: 200, address });
        return { token: s.token, expires_at: s.expires_at, username: user.username, role: user.role };
      },
    })
    .add({
      method: 'post', path: '/auth/logout', tag: 'users', role: 'viewer', status: 204,
      summary: 'End this login session (a personal token or the admin token stays valid)',
      handler: async ({ req }) => {
        const p = who(req);
        if (p.via === 'session' && p.token_id) await accounts.endSession(p.token_id);
      },
    })
    .add({
      method: 'get', path: '/auth/me', tag: 'users', role: 'viewer', summary: 'Who this token is: user name, role and how it signed in (`session`, `token` or `admin-token`)',
      returns: '`{ username, role, via }`',
      handler: ({ req }) => {
        const p = who(req);
        return { username: p.username, role: p.role, via: p.via };
      },
    })
    .add({
      method: 'put', path: '/auth/password', tag: 'users', role: 'viewer', status: 204, errors: [401, 429], preflight: limiter.guard(),
      summary: 'Change your own password (needs the current one; wrong ones count as failed logins of the address); ends your login sessions',
      body: z.object({ current_password: password, password }),
      handler: async ({ body, req }) => {
        const p = who(req);
        if (p.via === 'admin-token') throw badRequest(`the admin token is not a user; log in as a user to change a password`);
        if (!(await accounts.verify(p.username, body.current_password))) throw unauthorized('the current password is wrong');
        await accounts.update(p.username, { password: body.password });
      },
    })
    .add({
      method: 'get', path: '/users', tag: 'users', role: 'admin', summary: 'List users (paginated)', query: z.object(page),
      returns: '`{ items: [{ id, username, role, last_login_at, created_at }], total, limit, offset }`',
      handler: ({ query }) => accounts.list({ limit: query.limit ?? 100, offset: query.offset ?? 0 }),
    })
    .add({
      method: 'post', path: '/users', tag: 'users', role: 'admin', status: 201, errors: [409],
      summary: 'Create a user: `username` a slug (`^[a-z0-9][a-z0-9_-]{0,63}$`), a password of 8 to 1024 characters, a role (viewer, operator, admin); 409 when the name is taken',
      body: z.object({ username, password, role }),
      handler: ({ body }) => accounts.create(body),
    })
    .add({
      method: 'get', path: '/users/:username', tag: 'users', role: 'admin', summary: 'Read a user', params: usernameParam, errors: [404],
      handler: ({ params }) => accounts.get(params.username),
    })
    .add({
      method: 'patch', path: '/users/:username', tag: 'users', role: 'admin', params: usernameParam, errors: [404, 409],
      summary: "Change a user's role or set a new password (ends their login sessions); the last admin cannot be demoted",
      body: z.object({ role: role.optional(), password: password.optional() }),
      handler: ({ params, body }) => {
        if (!body.role || body.role === 'admin') return accounts.update(params.username, body);
        return oneAtATime(async () => {
          if (await lastAdmin(params.username)) throw conflict(`'${params.username}' is the last admin`);
          return accounts.update(params.username, body);
        });
      },
    })
    .add({
      method: 'delete', path: '/users/:username', tag: 'users', role: 'admin', params: usernameParam, status: 204, errors: [404, 409],
      summary: 'Delete a user and every token of theirs; the last admin cannot be deleted',
      handler: ({ params }) =>
        oneAtATime(async () => {
          if (await lastAdmin(params.username)) throw conflict(`'${params.username}' is the last admin`);
          await accounts.delete(params.username);
        }),
    })
    .add({
      method: 'get', path: '/tokens', tag: 'users', role: 'viewer', query: z.object(page),
      summary: "Personal API tokens: yours (an admin sees everyone's); never the token itself",
      returns: '`{ items: [{ id, name, role, username, created_at, last_used_at, revoked_at }], total, limit, offset }`',
      handler: ({ query, req }) => {
        const p = who(req);
        return accounts.listTokens({ username: p.role === 'admin' ? undefined : p.username, limit: query.limit ?? 100, offset: query.offset ?? 0 });
      },
    })
    .add({
      method: 'post', path: '/tokens', tag: 'users', role: 'viewer', status: 201, errors: [403, 409],
      summary: "Create a personal API token with a role up to your own; the answer's `token` is shown only this once",
      body: z.object({ name: z.string().trim().min(1).max(100), role }),
      returns: '`{ id, name, role, username, created_at, token }`',
      handler: async ({ body, req }) => {
        const p = who(req);
        if (!roleAtLeast(p.role, body.role)) throw new FluxError('forbidden', `a ${p.role} cannot create a ${body.role} token`, 403);
        return accounts.createToken(p, body);
      },
    })
    .add({
      method: 'delete', path: '/tokens/:id', tag: 'users', role: 'viewer', params: tokenParam, status: 204, errors: [404],
      summary: 'Revoke a personal API token (yours; an admin may revoke any)',
      handler: async ({ params, req }) => {
        const p = who(req);
        const t = await accounts.getToken(params.id);
        const owner = t.username ?? ADMIN_TOKEN_PRINCIPAL;
        if (p.role !== 'admin' && owner !== p.username) throw notFound('token', params.id);
        await accounts.revokeToken(params.id);
      },
    })
    .add({
      method: 'get', path: '/audit', tag: 'users', role: 'admin',
      summary: 'The audit log, newest first: who (`username`), what (`action`), `target`, `status`, from where (`address`), when (`at`); every change through the API, logins, flow deploys. Bounded: the oldest rows go first',
      query: z.object({ ...page, username: z.string().max(64).optional(), action: z.string().max(100).optional() }),
      returns: '`{ items: [{ id, at, username, role, action, target, status, address, detail }], total, limit, offset }`',
      handler: async ({ query }) => {
        await audit.flush();
        return audit.list({ limit: query.limit ?? 100, offset: query.offset ?? 0, username: query.username, action: query.action });
      },
    });
}
