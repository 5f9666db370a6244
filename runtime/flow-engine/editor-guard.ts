/**
 * Bounds on the editor's unauthenticated input, in front of Node-RED's admin app. Node-RED parses
 * bodies up to 5 MB on every admin route before it checks the token, and keeps the user name of
 * every login attempt for 10 minutes (its per-name limit, which any new name bypasses). So:
 *  - a request without `Authorization` has its body read here, at most 4 KiB (413 past it);
 *    Node-RED then sees it parsed and does not read it again;
 *  - the login route (`POST /editor/auth/token`) is limited per client address
 *    (runtime/login-limiter) and takes a user name of at most 64 characters and a password of at
 *    most 1024 (400 past them).
 */
import express, { type Request, type RequestHandler, type Response, type NextFunction } from 'express';
import type { LoginLimiter } from '../login-limiter/index.ts';

export const EDITOR_UNAUTHENTICATED_BODY_LIMIT = '4kb';
export const EDITOR_MAX_USERNAME = 64;
export const EDITOR_MAX_PASSWORD = 1024;

const parsers = [express.json({ limit: EDITOR_UNAUTHENTICATED_BODY_LIMIT }), express.urlencoded({ limit: EDITOR_UNAUTHENTICATED_BODY_LIMIT, extended: false })];

const answer = (res: Response, status: number, code: string, message: string) => void res.status(status).json({ error: { code, message } });

/** Reads a JSON or form body within 4 KiB (413 past it). */
function readSmallBody(req: Request, res: Response, next: NextFunction): void {
  let i = 0;
  const step = (err?: unknown): void => {
    if (err) {
      const e = err as { type?: string; status?: number };
      if (e.type === 'entity.too.large') return answer(res, 413, 'too_large', `a request without a token may send at most ${EDITOR_UNAUTHENTICATED_BODY_LIMIT}`);
      return answer(res, e.status && e.status < 500 ? e.status : 400, 'bad_request', 'the request body cannot be read');
    }
    const parse = parsers[i++];
    if (!parse) {
      // Node-RED's own body-parser (1.x) skips a request marked `_body`; express 5's (2.x) no longer sets it.
      if (req.body !== undefined) (req as Request & { _body?: boolean })._body = true;
      return next();
    }
    parse(req, res, step);
  };
  step();
}

/** Reads the body of a request that carries no Authorization header within 4 KiB. */
export function boundUnauthenticatedBodies(): RequestHandler {
  return (req, res, next) => {
    if (req.headers.authorization || req.method === 'GET' || req.method === 'HEAD') return next();
    readSmallBody(req, res, next);
  };
}

/** The login route: the per-address limiter, then the bounds on the user name and password. */
export function guardEditorLogin(limiter: LoginLimiter): RequestHandler[] {
  return [
    limiter.guard(),
    // Whatever headers it carries: Node-RED keeps the user name of every attempt.
    readSmallBody,
    (req, res, next) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const { username, password } = body;
      if (username !== undefined && (typeof username !== 'string' || username.length > EDITOR_MAX_USERNAME)) {
        return answer(res, 400, 'bad_request', `username must be a string of at most ${EDITOR_MAX_USERNAME} characters`);
      }
      if (password !== undefined && (typeof password !== 'string' || password.length > EDITOR_MAX_PASSWORD)) {
        return answer(res, 400, 'bad_request', `password must be a string of at most ${EDITOR_MAX_PASSWORD} characters`);
      }
      next();
    },
  ];
}
