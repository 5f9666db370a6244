/**
 * Which node polls which Modbus endpoint (docs/cluster.md "Modbus in a cluster"): a lease per
 * endpoint in Redis (`modbus:<host:port/mode>`, value the node id, expiring after the lease time),
 * claimed and renewed by the Modbus master at each of its registry syncs (runtime/modbus/master.ts).
 * A node takes a free endpoint only while it holds fewer than its share (endpoints / nodes listed,
 * rounded up), and lets go of those beyond it (a node joined), so the endpoints spread over the
 * nodes; a killed node's endpoints are free once its leases expire, and the survivors take them at
 * their next sync. Between a release and the other node's next sync nobody polls the endpoint.
 */
import type { Redis } from 'ioredis';
import { NODES } from './scripts.ts';

/**
 * KEYS[1] the node list, KEYS[2..] the endpoints' leases; ARGV: node id, lease ms, endpoint count.
 * Answers the indexes (1-based, into the endpoints) of the leases this node holds now.
 */
const CLAIM = `
local me, ttl, total = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local nodes = math.max(redis.call('HLEN', KEYS[1]), 1)
local share = math.ceil(total / nodes)
local mine, free = {}, {}
for i = 2, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v == me and #mine >= share then
    redis.call('DEL', KEYS[i])
  elseif v == me then
    redis.call('PEXPIRE', KEYS[i], ttl)
    mine[#mine + 1] = i - 1
  elseif not v then
    free[#free + 1] = i
  end
end
for _, i in ipairs(free) do
  if #mine >= share then break end
  redis.call('SET', KEYS[i], me, 'PX', ttl)
  mine[#mine + 1] = i - 1
end
return mine
`;

export interface ModbusLeases {
  /**
   * Claims or renews the leases of `endpoints` (endpoint keys); answers those this node holds, or
   * undefined when Redis cannot be asked (the caller keeps what it had: nobody else can claim then).
   */
  claim(endpoints: string[], leaseMs: number): Promise<Set<string> | undefined>;
}

const leaseKey = (endpoint: string) => `modbus:${endpoint}`;

export function createModbusLeases(nodeId: string, connection: () => Redis): ModbusLeases {
  return {
    async claim(endpoints, leaseMs) {
      if (!endpoints.length) return new Set();
      try {
        const held = (await connection().eval(CLAIM, 1 + endpoints.length, NODES, ...endpoints.map(leaseKey), nodeId, leaseMs, endpoints.length)) as number[];
        return new Set(held.map((i) => endpoints[i - 1]!));
      } catch {
        return undefined;
      }
    },
  };
}
