/** The one error mapper: FluxError → its status; body-parser errors → 400/413; anything else → logged 500 without a stack. */
import type { ErrorRequestHandler } from 'express';
import { isFluxError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (res.headersSent) return;
    if (isFluxError(err)) {
      res.status(err.status).json({ error: { code: err.code, message: err.message } });
      return;
    }
    const e = err as { type?: string; status?: number; message?: string; expose?: boolean };
    if (e.type === 'entity.parse.failed') {
      res.status(400).json({ error: { code: 'invalid_json', message: `request body is not valid JSON: ${e.message}` } });
      return;
    }
    if (e.type === 'entity.too.large') {
      res.status(413).json({ error: { code: 'too_large', message: 'request body is larger than the limit' } });
      return;
    }
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      res.status(e.status).json({ error: { code: e.type?.replace(/\./g, '_') ?? 'bad_request', message: e.expose ? String(e.message) : 'bad request' } });
      return;
    }
    log.error({ err, method: req.method, url: req.originalUrl }, 'unhandled API error');
    res.status(500).json({ error: { code: 'internal', message: 'internal error (see the server log)' } });
  };
}
