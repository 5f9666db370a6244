/**
 * @module safe-id — the one rule for ids that become file or folder names, and the check that a
 * resolved path stays inside its folder. Every id that reaches the disk (plugin ids, stream ids,
 * export names…) goes through `checkSlug`; every path built from one goes through `pathInside`
 * before anything is read, written or deleted there.
 */
import path from 'node:path';
import { FluxError } from '../errors/index.ts';

/**
 * Lower-case ASCII letters and digits, then up to 63 more of those, `_` or `-`. No dots (so no `.`,
 * `..` or extensions), no slashes or backslashes, no NUL, no Unicode look-alikes (fullwidth `．`),
 * no case twins that collide on case-insensitive file systems.
 */
export const SLUG_PATTERN = '^[a-z0-9][a-z0-9_-]{0,63}$';
export const SLUG_MAX_LENGTH = 64;
const SLUG_RE = new RegExp(SLUG_PATTERN);

/** An id shown in an error message: bounded, with control and non-ASCII characters escaped. */
export function quoteId(id: string): string {
  const shown = id.length > 80 ? `${id.slice(0, 80)}…` : id;
  return JSON.stringify(shown).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function isSlug(id: unknown): id is string {
  return typeof id === 'string' && SLUG_RE.test(id);
}

/** `id` if it is a slug; otherwise the API's 400 `invalid_id`, naming `kind` ("plugin", "stream"…). */
export function checkSlug(kind: string, id: unknown): string {
  if (isSlug(id)) return id;
  const shown = typeof id === 'string' ? quoteId(id) : typeof id;
  throw new FluxError('invalid_id', `${kind} id ${shown} is not allowed: it must match ${SLUG_PATTERN} (lower-case letters, digits, _ and -; at most ${SLUG_MAX_LENGTH} characters)`, 400);
}

/**
 * `dir` joined with `parts` and resolved; throws unless the result lies strictly inside `dir`
 * (the folder itself counts as outside: deleting "inside" it must never delete it). The check is
 * on the resolved names, so `..`, absolute parts and separators in a part cannot leave `dir`.
 */
export function pathInside(dir: string, ...parts: string[]): string {
  for (const p of parts) {
    if (typeof p !== 'string' || p.length === 0 || p.includes('\0')) {
      throw new FluxError('invalid_path', `path part ${typeof p === 'string' ? quoteId(p) : typeof p} is empty or contains NUL`, 400);
    }
  }
  const root = path.resolve(dir);
  const target = path.resolve(root, ...parts);
  const rel = path.relative(root, target);
  if (rel === '' || rel === '..' || rel.startsWith('..' + path.sep) || path.isAbsolute(rel)) {
    throw new FluxError('invalid_path', `path ${quoteId(parts.join('/'))} leaves its folder`, 400);
  }
  return target;
}
