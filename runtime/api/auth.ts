/** Bearer-token auth for /api (docs/api.md): `Authorization: Bearer <FLUX_ADMIN_TOKEN>`, compared in constant time. */
import { timingSafeEqual, createHash } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import { unauthorized } from '../errors/index.ts';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time comparison of two strings of any length (hashing first hides the length). */
export function tokenEquals(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

/** True when the request carries the right bearer token in its Authorization header. */
export function hasBearer(req: Request, token: string): boolean {
  const given = bearerToken(req.headers.authorization);
  return given !== undefined && tokenEquals(given, token);
}

/**
 * Needs the token in `Authorization: Bearer`; with `queryToken`, `?access_token=` is taken too (only
 * for routes a browser opens without headers: downloads. The live feed checks its own upgrade).
 */
export function requireToken(token: string, opts: { queryToken?: boolean } = {}): RequestHandler {
  return (req, _res, next) => {
    const given = bearerToken(req.headers.authorization) ?? (opts.queryToken && typeof req.query.access_token === 'string' ? req.query.access_token : undefined);
    if (given && tokenEquals(given, token)) return next();
    next(unauthorized(given ? 'invalid bearer token' : 'missing bearer token: send Authorization: Bearer <FLUX_ADMIN_TOKEN>'));
  };
}
