/**
 * Redis connections of a cluster node. They fail fast instead of queueing without end (a command
 * waits for at most two reconnection attempts, and none waits longer than COMMAND_TIMEOUT_MS), log
 * their errors at a bounded rate, and the first one turns "Redis is down" into one clear line at start.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { ConfigError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import { redact } from '../../settings.ts';

/** no Redis command waits longer (a paused or wedged Redis holds a publish at most this long) */
export const COMMAND_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 5_000;
/** one error line per connection at most this often while Redis stays unreachable */
const ERROR_LOG_EVERY_MS = 30_000;

export interface RedisTarget {
  url: string;
  /** FLUX_REDIS_PREFIX: starts every key (through ioredis' keyPrefix) and every channel */
  prefix: string;
}

/**
 * One connection. `keys`: its commands' keys get the prefix (not its channels: Redis has no key
 * prefix for pub/sub, so channel names carry it themselves). Connects at once, or on `connect()`
 * with `lazy`.
 */
export function openRedis(target: RedisTarget, role: string, log: Logger, opts: { keys: boolean; lazy?: boolean }): Redis {
  const options: RedisOptions = {
    keyPrefix: opts.keys ? target.prefix : undefined,
    connectionName: `flux-${role}`,
    lazyConnect: opts.lazy ?? false,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 2,
    retryStrategy: (attempt) => Math.min(100 * attempt, 2000),
    enableAutoPipelining: true,
  };
  const redis = new Redis(target.url, options);
  let lastLogged = 0;
  let suppressed = 0;
  // ioredis emits 'error' at every failed reconnection: one line now and then, never a crash
  redis.on('error', (err: Error) => {
    const now = Date.now();
    if (now - lastLogged < ERROR_LOG_EVERY_MS) {
      suppressed++;
      return;
    }
    log.warn({ redis: role, err: err.message, suppressed }, 'Redis connection error');
    lastLogged = now;
    suppressed = 0;
  });
  return redis;
}

/** Connects a lazy connection; Redis unreachable becomes a ConfigError naming FLUX_REDIS_URL. */
export async function connectOrExplain(redis: Redis, url: string): Promise<void> {
  // connect() rejects with "Connection is closed"; the cause (ECONNREFUSED, ENOTFOUND…) came as 'error'
  let cause: NodeJS.ErrnoException | undefined;
  const onError = (err: NodeJS.ErrnoException) => void (cause ??= err);
  redis.on('error', onError);
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    const e = cause ?? (err as NodeJS.ErrnoException);
    const why = e.code ?? e.message;
    throw new ConfigError('FLUX_REDIS_URL', `FLUX_REDIS_URL=${redact(url)}: Redis cannot be reached (${why}); cluster mode needs it (unset FLUX_REDIS_URL to run a single node)`);
  } finally {
    redis.off('error', onError);
  }
}

/** Closes a connection: QUIT when it is up (pending replies arrive first), else drops it. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'ready') {
    await Promise.race([redis.quit().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  }
  redis.disconnect();
}
