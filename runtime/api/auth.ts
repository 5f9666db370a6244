/**
 * Bearer-token auth for /api: `Authorization: Bearer <token>` where the token is the break-glass
 * admin token (FLUX_ADMIN_TOKEN), a login session or a personal API token (runtime/users). Each
 * route declares the least role it needs (routes.ts); this is the one place that checks it:
 * 401 without a valid token, 403 with a role below the route's.
 */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { FluxError, unauthorized } from '../errors/index.ts';
import { bearerToken, roleAtLeast, type Principal, type Role, type Users } from '../users/index.ts';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time comparison of two strings of any length (hashing first hides the length). */
export function tokenEquals(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** True when the request carries the right bearer token in its Authorization header. */
export function hasBearer(req: Request, token: string): boolean {
  const given = bearerToken(req.headers.authorization);
  return given !== undefined && tokenEquals(given, token);
}

const principals = new WeakMap<Request, Principal>();

/** Who made an authenticated request (set by `requireRole`). */
export function principalOf(req: Request): Principal | undefined {
  return principals.get(req);
}

/** The client address as the audit log and the login limiter see it ('trust proxy' in runtime/app). */
export function clientAddress(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}

export const forbidden = (role: Role, needs: Role) => new FluxError('forbidden', `this needs the ${needs} role; the token's role is ${role}`, 403);

/**
 * Needs a token in `Authorization: Bearer` whose role is at least `role`; with `queryToken`,
 * `?access_token=` is taken too (only for routes a browser opens without headers: downloads. The
 * live feed checks its own upgrade).
 */
export function requireRole(users: Users, role: Role, opts: { queryToken?: boolean } = {}): RequestHandler {
  return (req, _res, next) => {
    const given = bearerToken(req.headers.authorization) ?? (opts.queryToken && typeof req.query.access_token === 'string' ? req.query.access_token : undefined);
    if (!given) return next(unauthorized('missing bearer token: send Authorization: Bearer <token> (a login session, an API token or FLUX_ADMIN_TOKEN)'));
    users.authenticate(given).then(
      (p) => {
        if (!p) return next(unauthorized('invalid or expired bearer token'));
        principals.set(req, p); // also when refused: the audit log names who tried
        if (!roleAtLeast(p.role, role)) return next(forbidden(p.role, role));
        next();
      },
      (err: unknown) => next(err),
    );
  };
}
