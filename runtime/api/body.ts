/**
 * Request bodies and parameters as hostile input: JSON is read per route, after authentication,
 * within the route's size limit and refused past MAX_JSON_DEPTH before anything walks it; NUL
 * characters in path, query or body values are refused with 400 before any handler or database sees them.
 */
import express, { type Request, type RequestHandler } from 'express';
import { FluxError } from '../errors/index.ts';
import { checkJsonDepth, checkNoNul } from '../input-limits/index.ts';
import { quoteId } from '../safe-id/index.ts';

/** Body limit of a route that needs a token, unless it sets its own. */
export const AUTHENTICATED_BODY_LIMIT = '1mb';
/** Body limit of a route without a token (`auth: false`), unless it sets its own. */
export const PUBLIC_BODY_LIMIT = '16kb';

const JSON_TYPES = ['application/json', 'application/*+json'];

/**
 * express.json within `limit`, refusing JSON nested deeper than MAX_JSON_DEPTH (400 too_deep) and
 * any charset but UTF-8 (415 unsupported_charset). The depth scan reads the bytes as they came, and
 * body-parser decodes other charsets only after it: in UTF-16 or UTF-7 brackets hide from the scan
 * (test/security/json-charset.test.ts). RFC 8259 asks for UTF-8 anyway.
 */
export function jsonBody(limit: string): RequestHandler {
  return express.json({
    limit,
    type: JSON_TYPES,
    verify: (_req, _res, buf, encoding) => {
      if (encoding !== 'utf-8') throw new FluxError('unsupported_charset', `JSON bodies must be UTF-8, not ${quoteId(encoding)}`, 415);
      checkJsonDepth(buf, 'the request body');
    },
  });
}

/** Throws 400 nul_character when a path or query parameter holds a NUL (bodies: checked after their schema). */
export function checkRequestNul(req: Request): void {
  checkNoNul(req.params, 'path');
  checkNoNul(req.query, 'query');
}
