/**
 * @module console — the operator console at /console: the built single-page app in console/dist
 * (built from console/src by `npm run console:build`, committed; see docs/console.md), served as
 * static files with a fallback to index.html for the app's own paths. It talks to /api only.
 */
import fs from 'node:fs';
import path from 'node:path';
import express from 'express';
import { PROJECT_DIR } from '../../settings.ts';

export const CONSOLE_PATH = '/console';
export const CONSOLE_DIST = path.join(PROJECT_DIR, 'console', 'dist');

/** Everything the app needs comes from this origin; video players fetch media into blob: URLs. */
const CSP = [
  "default-src 'self'",
  "connect-src 'self' ws: wss:",
  "img-src 'self' data: blob:",
  "media-src 'self' blob:",
  "worker-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'self'",
].join('; ');

export interface ConsoleOptions {
  /** the built app (default console/dist) */
  distDir?: string;
}

export function mountConsole(app: express.Express, opts: ConsoleOptions = {}): void {
  const dist = opts.distDir ?? CONSOLE_DIST;
  const indexFile = path.join(dist, 'index.html');
  const router = express.Router({ strict: true });
  router.use((_req, res, next) => {
    res.setHeader('content-security-policy', CSP);
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'same-origin');
    next();
  });
  // File names under assets/ carry their content hash: cache them for good.
  router.use('/assets', express.static(path.join(dist, 'assets'), { immutable: true, maxAge: '365d', index: false }));
  router.use('/assets', (_req, res) => void res.status(404).type('text/plain').send('no such file'));
  router.use(express.static(dist, { index: false, maxAge: 0 }));
  // Any other GET is a page of the app (/console/devices/d1): the app routes it.
  router.get(/.*/, (req, res, next) => {
    if (!req.accepts('html')) return next();
    if (!fs.existsSync(indexFile)) {
      res.status(503).type('text/plain').send('the console is not built: run npm run console:build');
      return;
    }
    res.setHeader('cache-control', 'no-cache');
    res.sendFile(indexFile);
  });
  // serve-static refuses malformed or escaping paths (400/403): answer them plainly, without a log line.
  router.use(((err, _req, res, next) => {
    const status = (err as { status?: number }).status;
    if (typeof status !== 'number' || status >= 500) return next(err);
    res.status(status).type('text/plain').send(status === 404 ? 'no such file' : 'refused');
  }) as express.ErrorRequestHandler);
  // Relative asset URLs need the trailing slash (express matches /console and /console/ alike).
  app.use(CONSOLE_PATH, (req, res, next) => (req.originalUrl === CONSOLE_PATH ? res.redirect(301, `${CONSOLE_PATH}/`) : router(req, res, next)));
}
