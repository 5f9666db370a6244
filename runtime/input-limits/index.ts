/**
 * @module input-limits — the checks every piece of hostile input goes through before it is used:
 * JSON nesting depth (checked on the raw bytes, before anything walks the tree recursively) and NUL
 * characters in strings (SQL drivers and file names choke on them). Sizes live with each route.
 */
import { FluxError } from '../errors/index.ts';

/** JSON deeper than this is refused: objects and arrays nested more than 64 levels. */
export const MAX_JSON_DEPTH = 64;

const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The deepest nesting of `{`/`[` in JSON text, outside strings, scanning at most until it passes
 * `stopAt` (so a hostile 100,000-deep document costs one early-stopping pass and no recursion).
 */
export function jsonDepth(bytes: Uint8Array | string, stopAt = Infinity): number {
  const text = typeof bytes === 'string';
  const n = bytes.length;
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < n; i++) {
    const c = text ? (bytes as string).charCodeAt(i) : (bytes as Uint8Array)[i]!;
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > max) {
        max = depth;
        if (max > stopAt) return max;
      }
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return max;
}

/**
 * The deepest nesting of objects and arrays in an already parsed value (GraphQL's JSON arguments
 * come parsed), iteratively and stopping once it passes `stopAt`: whatever walks it recursively
 * later (JSON.stringify on the way to a script worker or a database) never sees more.
 */
export function valueDepth(value: unknown, stopAt = Infinity): number {
  const stack: [unknown, number][] = [[value, 0]];
  let max = 0;
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d + 1 > max) {
      max = d + 1;
      if (max > stopAt) return max;
    }
    for (const x of Array.isArray(v) ? v : Object.values(v)) if (x !== null && typeof x === 'object') stack.push([x, d + 1]);
  }
  return max;
}

/** The API's 400 for JSON nested deeper than `max`, naming the limit. */
export function tooDeep(where: string, max = MAX_JSON_DEPTH): FluxError {
  return new FluxError('too_deep', `${where} is JSON nested more than ${max} levels deep (the limit is ${max})`, 400);
}

/** Throws `too_deep` when the JSON text nests deeper than `max`. */
export function checkJsonDepth(bytes: Uint8Array | string, where: string, max = MAX_JSON_DEPTH): void {
  if (jsonDepth(bytes, max) > max) throw tooDeep(where, max);
}

/**
 * Where a NUL character hides in a parsed value (strings, keys, arrays, objects), as a dotted
 * path, or undefined. Iterative, and bounded by `maxNodes` visited values (depth is already bounded).
 */
export function findNul(value: unknown, maxNodes = 100_000): string | undefined {
  const stack: [unknown, string][] = [[value, '']];
  let visited = 0;
  while (stack.length && visited++ < maxNodes) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      if (v.includes('\0')) return at || '(value)';
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) stack.push([v[i], `${at}[${i}]`]);
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k.includes('\0')) return `${at}${at ? '.' : ''}(a key)`;
        stack.push([x, at ? `${at}.${k}` : k]);
      }
    }
  }
  return undefined;
}

/** Throws the API's 400 `nul_character` when `value` holds a NUL anywhere; `where` is "query", "path"… */
export function checkNoNul(value: unknown, where: string): void {
  const at = findNul(value);
  if (at !== undefined) throw new FluxError('nul_character', `${where}${at === '(value)' ? '' : `.${at.slice(0, 100)}`} contains a NUL character (\\u0000), which is never valid here`, 400);
}
