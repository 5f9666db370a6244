/**
 * Gateways and their children in the registry: the checks on `devices.gateway_id` (an existing
 * gateway, never the device itself, never a cycle) and a cache of each gateway's child ids, so that
 * the uplink path asks "is X a child of gateway G?" without a database read per message.
 */
import type { Model, ModelStatic } from 'sequelize';
import { FluxError, conflict, notFound } from '../errors/index.ts';

/** gateways may hang below gateways, this deep at most (a chain is walked on every attach) */
export const MAX_GATEWAY_DEPTH = 8;

export interface GatewayTopology {
  /** Checks that `gatewayId` may become the gateway of `deviceId`; throws 404/400/409 naming the id. */
  checkParent(deviceId: string, gatewayId: string): Promise<void>;
  /** Runs `change` alone among topology changes of this process (two attaches cannot make a cycle together). */
  serialized<T>(change: () => Promise<T>): Promise<T>;
  /** The ids of `gatewayId`'s children, from the cache when fresh, else read once (concurrent calls share it). */
  childIds(gatewayId: string): Promise<ReadonlySet<string>>;
  /** The cached child ids while fresh (a stale entry is served while one background read refreshes it), else undefined. */
  cachedChildIds(gatewayId: string): ReadonlySet<string> | undefined;
  /** Drops the cached children of these gateways (every gateway's without an argument). */
  forget(...gatewayIds: (string | null | undefined)[]): void;
}

export interface GatewayTopologyOptions {
  Device: ModelStatic<Model>;
  /** how long cached child ids count as fresh (ms); registry writes drop them at once */
  ttlMs: number;
  /** gateways whose children are cached at once (oldest dropped first) */
  maxCached?: number;
  onRefreshError?(gatewayId: string, err: Error): void;
}

export function createGatewayTopology(opts: GatewayTopologyOptions): GatewayTopology {
  const { Device, ttlMs } = opts;
  const maxCached = opts.maxCached ?? 10_000;
  const cache = new Map<string, { at: number; ids: ReadonlySet<string> }>();
  const loading = new Map<string, Promise<ReadonlySet<string>>>();
  let epoch = 0;
  let chain: Promise<unknown> = Promise.resolve();

  async function read(gatewayId: string): Promise<ReadonlySet<string>> {
    const start = epoch;
    const rows = await Device.findAll({ where: { gateway_id: gatewayId }, attributes: ['id'], raw: true });
    const ids: ReadonlySet<string> = new Set((rows as unknown as { id: string }[]).map((r) => r.id));
    if (epoch === start) {
      if (cache.size >= maxCached && !cache.has(gatewayId)) cache.delete(cache.keys().next().value as string);
      cache.set(gatewayId, { at: Date.now(), ids });
    }
    return ids;
  }

  function load(gatewayId: string): Promise<ReadonlySet<string>> {
    let p = loading.get(gatewayId);
    if (!p) {
      p = read(gatewayId).finally(() => loading.delete(gatewayId));
      loading.set(gatewayId, p);
    }
    return p;
  }

  return {
    async checkParent(deviceId, gatewayId) {
      if (gatewayId === deviceId) throw new FluxError('invalid_gateway', `device '${deviceId}' cannot be its own gateway`, 400);
      let at: string | null = gatewayId;
      for (let depth = 0; at !== null; depth++) {
        const row: Model | null = await Device.findByPk(at, { attributes: ['id', 'is_gateway', 'gateway_id'] });
        if (!row) {
          if (depth === 0) throw notFound('gateway device', gatewayId);
          break; // a dangling reference further up is not this change's problem
        }
        if (depth === 0 && !row.get('is_gateway')) throw conflict(`device '${gatewayId}' is not a gateway (set is_gateway first)`);
        const up = row.get('gateway_id') as string | null;
        if (up === deviceId) throw conflict(`attaching '${deviceId}' to '${gatewayId}' would make a cycle: '${deviceId}' is above '${gatewayId}'`);
        if (depth + 1 >= MAX_GATEWAY_DEPTH) throw conflict(`gateway '${gatewayId}' is ${MAX_GATEWAY_DEPTH} levels deep already; gateways nest at most ${MAX_GATEWAY_DEPTH} levels`);
        at = up;
      }
    },
    serialized(change) {
      const next = chain.then(change, change);
      chain = next.catch(() => undefined);
      return next;
    },
    childIds(gatewayId) {
      const c = cache.get(gatewayId);
      if (c && Date.now() - c.at < ttlMs) return Promise.resolve(c.ids);
      return load(gatewayId);
    },
    cachedChildIds(gatewayId) {
      const c = cache.get(gatewayId);
      if (!c) return undefined;
      if (Date.now() - c.at >= ttlMs && !loading.has(gatewayId)) load(gatewayId).catch((err: Error) => opts.onRefreshError?.(gatewayId, err));
      return c.ids;
    },
    forget(...gatewayIds) {
      epoch++;
      if (gatewayIds.length === 0) cache.clear();
      for (const g of gatewayIds) if (g) cache.delete(g);
    },
  };
}

