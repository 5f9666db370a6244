/**
 * @module login-limiter — failed logins counted per client address, in a bounded table. An address
 * that failed `maxFailures` times within `windowMs` is refused (429) until its window ends; a
 * success does not count (but does not clear the failures before it). IPv6 addresses count per
 * /64 (one host usually holds a whole /64).
 *
 * Used by the editor's token route (runtime/flow-engine) and by any other login route through
 * `guard()`: check before the work, count the attempt, take it back when it succeeded.
 */
import net from 'node:net';
import type { Request, RequestHandler, Response } from 'express';

export interface LoginLimiterOptions {
  /** failures allowed per address and window (default 10) */
  maxFailures?: number;
  /** the window, from an address's first failure (default 5 minutes) */
  windowMs?: number;
  /** addresses tracked at most; the oldest entry goes first when full (default 10,000) */
  maxAddresses?: number;
  now?: () => number;
}

export interface LoginLimiter {
  readonly maxFailures: number;
  readonly windowMs: number;
  /** ms until `address` may try again; 0 when it may now */
  blockedFor(address: string): number;
  failed(address: string): void;
  /** takes back one attempt counted by `failed` (the guard counts every attempt before it runs) */
  succeeded(address: string): void;
  /** addresses tracked now (bounded by maxAddresses) */
  readonly size: number;
  /**
   * Express middleware for a login route: answers 429 `rate_limited` (with Retry-After) while the
   * client's address is blocked. Otherwise the attempt counts as a failure before it runs (so
   * concurrent attempts cannot all slip through) and a 2xx answer takes that count back.
   */
  guard(): RequestHandler;
}

/** The key an address is counted under: IPv4 as is, IPv6 by its /64, IPv4-mapped IPv6 as IPv4. */
export function addressKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (net.isIPv6(address)) return ipv6Prefix64(address);
  return address;
}

function ipv6Prefix64(address: string): string {
  const [head = '', tail = ''] = address.split('%')[0]!.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':') + '::/64';
}

export function createLoginLimiter(opts: LoginLimiterOptions = {}): LoginLimiter {
  const maxFailures = opts.maxFailures ?? 10;
  const windowMs = opts.windowMs ?? 5 * 60_000;
  const maxAddresses = opts.maxAddresses ?? 10_000;
  const now = opts.now ?? Date.now;
  /** key → failures in the current window and when it started; Map order = insertion order (oldest first) */
  const table = new Map<string, { failures: number; since: number }>();

  const current = (key: string) => {
    const e = table.get(key);
    if (e && now() - e.since >= windowMs) {
      table.delete(key);
      return undefined;
    }
    return e;
  };

  const limiter: LoginLimiter = {
    maxFailures,
    windowMs,
    blockedFor(address) {
      const e = current(addressKey(address));
      return e && e.failures >= maxFailures ? Math.max(1, e.since + windowMs - now()) : 0;
    },
    failed(address) {
      const key = addressKey(address);
      const e = current(key);
      if (e) {
        e.failures++;
        return;
      }
      if (table.size >= maxAddresses) table.delete(table.keys().next().value!);
      table.set(key, { failures: 1, since: now() });
    },
    succeeded(address) {
      // Only this attempt's count goes: clearing the address's count let anyone with an account
      // interleave one good login of their own with nine guesses at another user's password.
      const key = addressKey(address);
      const e = current(key);
      if (e && --e.failures <= 0) table.delete(key);
    },
    get size() {
      return table.size;
    },
    guard() {
      return (req: Request, res: Response, next) => {
        // req.ip: the client behind a reverse proxy on loopback ('trust proxy' in runtime/app), else the peer.
        const address = req.ip ?? req.socket.remoteAddress;
        const wait = limiter.blockedFor(address ?? '');
        if (wait > 0) {
          res.setHeader('Retry-After', String(Math.ceil(wait / 1000)));
          res.status(429).json({ error: { code: 'rate_limited', message: `too many failed logins from this address; try again in ${Math.ceil(wait / 1000)} s` } });
          return;
        }
        limiter.failed(address ?? '');
        res.once('finish', () => {
          if (res.statusCode >= 200 && res.statusCode < 300) limiter.succeeded(address ?? '');
        });
        next();
      };
    },
  };
  return limiter;
}
