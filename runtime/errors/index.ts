/** @module errors — errors that carry a stable `code` and an HTTP `status` (answered as `{error:{code,message}}`, docs/api.md). */

export class FluxError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details?: unknown;
  constructor(code: string, message: string, status = 400, details?: unknown) {
    super(message);
    this.name = 'FluxError';
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

export const badRequest = (message: string, details?: unknown) => new FluxError('bad_request', message, 400, details);
export const notFound = (what: string, id: string) => new FluxError('not_found', `${what} '${id}' not found`, 404);
export const conflict = (message: string) => new FluxError('conflict', message, 409);
/** A field names a thing that does not exist (a product, device, plugin…): 400, naming the field and the value. */
export const unknownReference = (field: string, what: string, id: string) => new FluxError('unknown_reference', `${field}: ${what} '${id}' does not exist`, 400, { field, [what]: id });
export const unauthorized = (message = 'missing or invalid bearer token') => new FluxError('unauthorized', message, 401);

/** A configuration problem: the CLI prints `message` as one line and exits non-zero. */
export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(message);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

export function isFluxError(e: unknown): e is FluxError {
  return e instanceof FluxError;
}
