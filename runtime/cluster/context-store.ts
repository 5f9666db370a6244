/**
 * Node-RED context on Redis (docs/cluster.md "Flows"): in cluster mode the default context store,
 * so that `global.set()` in a flow on one node is what `global.get()` reads on another. A Node-RED
 * context store module (its API: @node-red/runtime/lib/nodes/context/memory.js and
 * localfilesystem.js: open, close, get, set, keys, delete, clean). Node-RED's in-memory store stays
 * available as the store `local` (per node, synchronous).
 *
 * Each scope (`global`, a flow's id, `<node id>:<flow id>`) is one hash `<prefix>context:<scope>`
 * (field: the top-level key, value: JSON); `<prefix>context-bytes:<scope>` counts its bytes. A Lua
 * script checks the bounds and writes in one step. Access is asynchronous: a get or keys without a
 * callback throws (Node-RED's rule for stores that cannot answer at once); a set without one is
 * written and its error logged. A top-level key is written without a read (the later of two wins).
 * A nested key (`a.b[0]`) is a compare-and-set: read the top-level value, change it with Node-RED's
 * property-path rules, and write it only if the stored JSON is still the string read (compared in
 * the same Lua step as the bounds, never decoded there: Redis' cjson would alter numbers and empty
 * arrays), else read again, at most CAS_ATTEMPTS times. So sets of different parts of one value
 * all stay, whichever nodes make them; one whose value keeps changing under it fails with a reason.
 * Nested sets of one value on this node wait for each other, so only other nodes make them retry.
 */
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { Logger } from '../log/index.ts';
import { closeRedis, COMMAND_TIMEOUT_MS, openRedis, type RedisTarget } from './connection.ts';

export interface ContextLimits {
  /** largest value (its JSON), bytes */
  maxValueBytes: number;
  /** keys per scope */
  maxKeys: number;
  /** all values of a scope together, bytes */
  maxScopeBytes: number;
}

export const CONTEXT_LIMITS: ContextLimits = { maxValueBytes: 1024 * 1024, maxKeys: 1000, maxScopeBytes: 16 * 1024 * 1024 };

type Callback = (err?: Error | null, ...values: unknown[]) => void;

/** A Node-RED context store (what a `contextStorage` entry's module function returns). */
export interface NodeRedContextStore {
  open(): Promise<void>;
  close(): Promise<void>;
  get(scope: string, key: string | string[], callback?: Callback): unknown;
  set(scope: string, key: string | string[], value: unknown, callback?: Callback): void;
  keys(scope: string, callback?: Callback): unknown;
  delete(scope: string): Promise<void>;
  clean(activeNodes: string[]): Promise<void>;
}

interface NodeRedUtil {
  normalisePropertyExpression(expr: string): (string | number)[];
  getObjectProperty(obj: object, expr: string): unknown;
  setObjectProperty(obj: object, expr: string, value: unknown, createMissing?: boolean): void;
}

/**
 * Node-RED's own property-path rules (`a.b[0]`, `a["b c"]`), from the @node-red/util it runs with.
 * Required when Node-RED creates the store, after the flow engine loaded Node-RED: required at
 * import, it would load @node-red/util before runtime/flow-engine/node-red-libraries.ts defers its
 * jsonata (test/flow-engine/deferred-libraries.test.ts).
 */
const nodeRedUtil = () => (createRequire(createRequire(createRequire(import.meta.url).resolve('node-red')).resolve('@node-red/runtime'))('@node-red/util') as { util: NodeRedUtil }).util;

/** a nested set reads again at most this often when its value changed between its read and its write */
export const CAS_ATTEMPTS = 10;

// KEYS: the scope's hash, its byte count; ARGV: maxKeys, maxScopeBytes, then field/value/expected
// triples (value '' deletes; expected '' writes whatever is stored, '-' only if the field is absent,
// '=' .. json only if it holds exactly that JSON: the string compared, never decoded)
const SET_SCRIPT = `
for i = 3, #ARGV, 3 do
  local expected = ARGV[i + 2]
  if expected ~= '' then
    local current = redis.call('HGET', KEYS[1], ARGV[i])
    if expected == '-' then
      if current then return redis.error_reply('context_conflict') end
    elseif current ~= string.sub(expected, 2) then
      return redis.error_reply('context_conflict')
    end
  end
end
local count = redis.call('HLEN', KEYS[1])
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
for i = 3, #ARGV, 3 do
  local f, v = ARGV[i], ARGV[i + 1]
  local exists = redis.call('HEXISTS', KEYS[1], f) == 1
  total = total - redis.call('HSTRLEN', KEYS[1], f) + #v
  if v == '' then
    if exists then count = count - 1 end
  elseif not exists then
    count = count + 1
  end
end
if count > tonumber(ARGV[1]) then return redis.error_reply('context_keys ' .. count) end
if total > tonumber(ARGV[2]) then return redis.error_reply('context_bytes ' .. total) end
for i = 3, #ARGV, 3 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i]) else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
if total > 0 then redis.call('SET', KEYS[2], total) else redis.call('DEL', KEYS[1], KEYS[2]) end
return count
`;

type ScriptedRedis = Redis & { fluxContextSet(hash: string, bytes: string, ...args: (string | number)[]): Promise<number> };

const SYNC_REFUSED = 'the cluster\'s shared context store answers through a callback: use get(key, callback) / keys(callback), or the store "local" (this node only) for synchronous access';

/** A Node-RED context store module on Redis: `module(config)` as `contextStorage.<name>.module` expects. */
export function redisContextModule(opts: { target: RedisTarget; log: Logger; limits?: ContextLimits }): () => NodeRedContextStore {
  const { prefix } = opts.target;
  const limits = opts.limits ?? CONTEXT_LIMITS;
  const log = opts.log.child({ module: 'context' });
  const hashOf = (scope: string) => `${prefix}context:${scope}`;
  const bytesOf = (scope: string) => `${prefix}context-bytes:${scope}`;
  return () => {
    const redUtil = nodeRedUtil();
    let redis: ScriptedRedis | undefined;
    const conn = () => {
      if (!redis) throw new Error('the shared context store is not open');
      return redis;
    };
    /** the top-level field of a key, and whether the key reaches inside its value */
    const fieldOf = (key: string) => {
      const parts = redUtil.normalisePropertyExpression(key);
      return { field: String(parts[0]), nested: parts.length > 1 };
    };
    const parse = (json: string | null) => (json === null ? undefined : (JSON.parse(json) as unknown));
    const getMany = async (scope: string, keys: string[]): Promise<unknown[]> => {
      const fields = keys.map((k) => fieldOf(k).field);
      const raw = await conn().hmget(hashOf(scope), ...fields);
      return keys.map((k, i) => {
        const { field, nested } = fieldOf(k);
        const top = parse(raw[i] ?? null);
        if (!nested) return top;
        try {
          return redUtil.getObjectProperty({ [field]: top }, k);
        } catch (err) {
          // as Node-RED's memory store: a path through a missing value reads undefined
          if ((err as { code?: string }).code === 'INVALID_EXPR') throw err;
          return undefined;
        }
      });
    };
    /** One write (one Lua step): `read` holds the stored JSON (null: none) of each field the new values were computed from. */
    const write = async (scope: string, keys: string[], values: unknown[], read: Map<string, string | null>): Promise<'conflict' | undefined> => {
      // the new top-level values, in order (a later key of the same field sees the earlier one)
      const tops = new Map<string, unknown>();
      for (const [f, json] of read) tops.set(f, parse(json));
      keys.forEach((k, i) => {
        const { field, nested } = fieldOf(k);
        if (!nested) return void tops.set(field, values[i]);
        // (Node-RED's setObjectProperty creates nothing under a key that holds undefined)
        const top = tops.get(field);
        const holder: Record<string, unknown> = top === undefined ? {} : { [field]: top };
        redUtil.setObjectProperty(holder, k, values[i], true);
        tops.set(field, holder[field]);
      });
      const args: string[] = [];
      for (const [field, value] of tops) {
        const json = value === undefined ? '' : JSON.stringify(value);
        if (json === undefined) throw new Error(`context value of '${field}' cannot be stored as JSON`);
        if (Buffer.byteLength(json) > limits.maxValueBytes) throw new Error(`context value of '${field}' is ${Buffer.byteLength(json)} bytes; the shared context store takes at most ${limits.maxValueBytes} per value`);
        const was = read.get(field);
        args.push(field, json, was === undefined ? '' : was === null ? '-' : `=${was}`);
      }
      try {
        await conn().fluxContextSet(hashOf(scope), bytesOf(scope), limits.maxKeys, limits.maxScopeBytes, ...args);
      } catch (err) {
        if (/context_conflict/.test((err as Error).message)) return 'conflict';
        const m = /context_(keys|bytes) (\d+)/.exec((err as Error).message);
        if (!m) throw err;
        throw new Error(m[1] === 'keys'
          ? `context scope ${scope} would hold ${m[2]} keys; the shared context store holds at most ${limits.maxKeys} per scope (delete keys with set(key, undefined))`
          : `context scope ${scope} would hold ${m[2]} bytes; the shared context store holds at most ${limits.maxScopeBytes} per scope`, { cause: err });
      }
      return undefined;
    };
    /**
     * Nested sets reading the value of scope + field: each waits for the one before it on this
     * store, so that they do not spend their attempts on each other. Waiting is only an economy
     * (the compare-and-set keeps them correct), so none waits longer than a Redis command may take:
     * with Redis wedged, a queue of sets does not add up its timeouts.
     */
    const pending = new Map<string, Promise<void>>();
    const waitAtMost = async (before: (Promise<void> | undefined)[]) => {
      if (before.every((p) => p === undefined)) return;
      const stop = new AbortController();
      try {
        await Promise.race([Promise.all(before), sleep(COMMAND_TIMEOUT_MS, undefined, { signal: stop.signal, ref: false })]);
      } finally {
        stop.abort();
      }
    };
    /** read, change, compare-and-set; again when another writer changed a value read in between */
    const casSet = async (scope: string, keys: string[], values: unknown[], nestedFields: string[]): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        const current = await conn().hmget(hashOf(scope), ...nestedFields);
        const read = new Map(nestedFields.map((f, i) => [f, current[i] ?? null]));
        if ((await write(scope, keys, values, read)) !== 'conflict') return;
        if (attempt >= CAS_ATTEMPTS) {
          const key = keys.find((k) => fieldOf(k).nested)!;
          const which = nestedFields.length === 1 ? `context value '${nestedFields[0]}'` : `one of the context values ${nestedFields.map((f) => `'${f}'`).join(', ')}`;
          throw new Error(`${which} of scope ${scope} changed under this set ${CAS_ATTEMPTS} times in a row (another writer); the nested key '${key}' was not stored`);
        }
        // a random pause, doubling, so that writers of one value on several nodes stop colliding
        await sleep(Math.random() * 2 ** (attempt - 1));
      }
    };
    const setMany = async (scope: string, keys: string[], values: unknown[]): Promise<void> => {
      const nestedFields = [...new Set(keys.filter((k) => fieldOf(k).nested).map((k) => fieldOf(k).field))];
      // a top-level key alone needs no read, so nothing can change under it
      if (!nestedFields.length) return void (await write(scope, keys, values, new Map()));
      const slots = nestedFields.map((f) => JSON.stringify([scope, f]));
      const before = slots.map((s) => pending.get(s));
      const done = waitAtMost(before).then(() => casSet(scope, keys, values, nestedFields));
      const settled = done.then(() => undefined, () => undefined);
      for (const s of slots) pending.set(s, settled);
      try {
        await done;
      } finally {
        for (const s of slots) if (pending.get(s) === settled) pending.delete(s);
      }
    };
    const answer = (p: Promise<unknown[]>, callback: Callback | undefined, spread: boolean) => {
      if (!callback) throw new Error(SYNC_REFUSED);
      p.then((values) => (spread ? callback(null, ...values) : callback(null, values[0])), (err: Error) => callback(err));
    };

    return {
      async open() {
        const r = openRedis(opts.target, 'context', log, { keys: false }) as ScriptedRedis;
        r.defineCommand('fluxContextSet', { numberOfKeys: 2, lua: SET_SCRIPT });
        redis = r;
      },
      async close() {
        const r = redis;
        redis = undefined;
        if (r) await closeRedis(r);
      },
      get(scope, key, callback) {
        const keys = Array.isArray(key) ? key : [key];
        return answer(getMany(scope, keys), callback, Array.isArray(key));
      },
      set(scope, key, value, callback) {
        const keys = Array.isArray(key) ? key : [key];
        const values = Array.isArray(key) ? (Array.isArray(value) ? value : [value]) : [value];
        const p = Promise.resolve().then(() => setMany(scope, keys, keys.map((_k, i) => (i < values.length ? values[i] : null))));
        p.then(
          () => callback?.(null),
          (err: Error) => {
            if (callback) callback(err);
            else log.warn({ scope, key, err: err.message }, 'a context value was not stored');
          },
        );
      },
      keys(scope, callback) {
        if (!callback) throw new Error(SYNC_REFUSED);
        conn().hkeys(hashOf(scope)).then((k) => callback(null, k), (err: Error) => callback(err));
      },
      async delete(scope) {
        await conn().del(hashOf(scope), bytesOf(scope));
      },
      async clean(activeNodes) {
        // like Node-RED's stores: every scope but global whose node (or flow) is no longer deployed
        const active = new Set(activeNodes);
        const r = conn();
        let cursor = '0';
        do {
          const [next, found] = await r.scan(cursor, 'MATCH', `${prefix}context:*`, 'COUNT', 500);
          cursor = next;
          const gone = found.map((k) => k.slice(`${prefix}context:`.length)).filter((scope) => scope !== 'global' && !active.has(scope.split(':')[0]!));
          if (gone.length) await r.del(...gone.flatMap((s) => [hashOf(s), bytesOf(s)]));
        } while (cursor !== '0');
      },
    };
  };
}
