/**
 * The cluster's Redis keys and the Lua scripts that change them atomically (docs/cluster.md "What
 * Redis holds"). Keys are relative to FLUX_REDIS_PREFIX (ioredis adds it to KEYS; scripts that
 * build a key themselves get the prefix as an argument):
 *
 * - `nodes`                 hash: node id → its last heartbeat report (JSON)
 * - `node:<id>:alive`       string with a TTL of one heartbeat period: the node is alive while it exists
 * - `node:<id>:devices`     set of `<transport>:<device id>` the node holds connections of
 * - `presence`              hash: device id → how many nodes hold it (absent: offline)
 *
 * A device is online while `presence` counts it; the node sets say whose counts to take back when a
 * node dies. Scripts keep the two in step, so a reaper and a returning node cannot count twice.
 */
import type { Redis } from 'ioredis';
import type { Transport } from '../ingress/index.ts';

export const NODES = 'nodes';
export const PRESENCE = 'presence';
export const aliveKey = (nodeId: string) => `node:${nodeId}:alive`;
export const devicesKey = (nodeId: string) => `node:${nodeId}:devices`;
export const member = (transport: Transport, deviceId: string) => `${transport}:${deviceId}`;

/** KEYS: node devices, presence. ARGV: member, device id. 1 when no node held the device before. */
const HELD = `
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then return 1 end
return 0`;

/** KEYS: node devices, presence. ARGV: member, device id. 1 when no node holds the device now. */
const RELEASED = `
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
  return 1
end
return 0`;

/**
 * Takes back up to ARGV[1] of a dead node's devices. KEYS: its devices, presence, its alive key,
 * nodes. ARGV: batch, node id. Answers { members left, members now offline… }, or { -1 } when the
 * node is alive again (it re-registers its own devices then).
 */
const REAP = `
if redis.call('EXISTS', KEYS[3]) == 1 then return {-1} end
local taken = redis.call('SPOP', KEYS[1], tonumber(ARGV[1]))
local out = {0}
for _, m in ipairs(taken) do
  local id = string.match(m, '^[^:]+:(.*)$')
  if id and redis.call('HINCRBY', KEYS[2], id, -1) <= 0 then
    redis.call('HDEL', KEYS[2], id)
    out[#out + 1] = m
  end
end
out[1] = redis.call('SCARD', KEYS[1])
if out[1] == 0 then redis.call('HDEL', KEYS[4], ARGV[2]) end
return out`;

/** KEYS: nodes. ARGV: key prefix. The nodes listed whose alive key is gone. */
const SILENT = `
local out = {}
for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'node:' .. id .. ':alive') == 0 then out[#out + 1] = id end
end
return out`;

/** KEYS: nodes. ARGV: key prefix, device id, this node. The first other live node holding the device. */
const HOLDER = `
for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do
  if id ~= ARGV[3] and redis.call('EXISTS', ARGV[1] .. 'node:' .. id .. ':alive') == 1 then
    local set = ARGV[1] .. 'node:' .. id .. ':devices'
    for _, t in ipairs({'mqtt', 'tcp', 'http', 'modbus'}) do
      if redis.call('SISMEMBER', set, t .. ':' .. ARGV[2]) == 1 then return id end
    end
  end
end
return false`;

/** KEYS: nodes. ARGV: key prefix. { id, report, remaining ttl ms (-2: gone) } per node. */
const LIST = `
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  out[#out + 1] = all[i]
  out[#out + 1] = all[i + 1]
  out[#out + 1] = redis.call('PTTL', ARGV[1] .. 'node:' .. all[i] .. ':alive')
end
return out`;

export interface ClusterScripts {
  held(nodeId: string, transport: Transport, deviceId: string): Promise<boolean>;
  released(nodeId: string, transport: Transport, deviceId: string): Promise<boolean>;
  /** takes back a batch of a dead node's devices: those now offline, and how many are left (-1: it is alive) */
  reap(nodeId: string, batch: number): Promise<{ left: number; offline: { id: string; transport: Transport }[] }>;
  silentNodes(): Promise<string[]>;
  holder(deviceId: string, self: string): Promise<string | undefined>;
  /** per device: whether any node holds it now */
  online(deviceIds: string[]): Promise<boolean[]>;
  list(): Promise<{ id: string; report: string; ttlMs: number }[]>;
}

type Run = (...args: (string | number)[]) => Promise<unknown>;

/** Defines the scripts on `redis` (a connection with the key prefix); EVALSHA, falling back to EVAL. */
export function clusterScripts(redis: Redis, prefix: string): ClusterScripts {
  const define = (name: string, keys: number, lua: string): Run => {
    redis.defineCommand(name, { numberOfKeys: keys, lua });
    return (redis as unknown as Record<string, Run>)[name]!.bind(redis);
  };
  const held = define('fluxHeld', 2, HELD);
  const released = define('fluxReleased', 2, RELEASED);
  const reap = define('fluxReap', 4, REAP);
  const silent = define('fluxSilent', 1, SILENT);
  const holder = define('fluxHolder', 1, HOLDER);
  const list = define('fluxList', 1, LIST);
  return {
    held: async (nodeId, transport, deviceId) => (await held(devicesKey(nodeId), PRESENCE, member(transport, deviceId), deviceId)) === 1,
    released: async (nodeId, transport, deviceId) => (await released(devicesKey(nodeId), PRESENCE, member(transport, deviceId), deviceId)) === 1,
    async reap(nodeId, batch) {
      const out = (await reap(devicesKey(nodeId), PRESENCE, aliveKey(nodeId), NODES, batch, nodeId)) as (number | string)[];
      const offline: { id: string; transport: Transport }[] = [];
      for (const m of out.slice(1) as string[]) {
        const at = m.indexOf(':');
        offline.push({ id: m.slice(at + 1), transport: m.slice(0, at) as Transport });
      }
      return { left: out[0] as number, offline };
    },
    silentNodes: async () => (await silent(NODES, prefix)) as string[],
    holder: async (deviceId, self) => ((await holder(NODES, prefix, deviceId, self)) as string | null) ?? undefined,
    online: async (deviceIds) => (deviceIds.length === 0 ? [] : (await redis.hmget(PRESENCE, ...deviceIds)).map((n) => n !== null)),
    async list() {
      const flat = (await list(NODES, prefix)) as (string | number)[];
      const out: { id: string; report: string; ttlMs: number }[] = [];
      for (let i = 0; i + 2 < flat.length; i += 3) out.push({ id: String(flat[i]), report: String(flat[i + 1]), ttlMs: Number(flat[i + 2]) });
      return out;
    },
  };
}
