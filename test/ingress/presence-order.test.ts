/**
 * Two nodes' status writes landing out of order (runtime/ingress/presence.ts `correct`): a device
 * taken over from node A by node B, where Redis (the real scripts of runtime/cluster on a
 * redis-server of the test's own) decides "offline" for A's release and then "online" for B's
 * connection, but A's database write lands last. The database must end with the cluster's answer.
 * Both nodes share one SQLite registry file, as two cluster nodes share one database.
 */
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { loadSettings } from '../../settings.ts';
import { createPresence, type Presence } from '../../runtime/ingress/index.ts';
import type { FluxContext } from '../../runtime/app/index.ts';
import type { DeviceIdentity } from '../../runtime/registry/index.ts';
import { clusterScripts } from '../../runtime/cluster/scripts.ts';
import { createClusterPresence, type ClusterPresence } from '../../runtime/cluster/shared-presence.ts';
import { startRedis, type TestRedis } from '../cluster/cluster.ts';
import { testContext } from '../helpers/context.ts';
import { tempDir } from '../helpers/flux-process.ts';

interface Node {
  ctx: FluxContext;
  shared: ClusterPresence;
  presence: Presence;
  /** how long this node's next status writes take to land */
  writeDelayMs: number;
}

describe('presence: status writes of two nodes landing out of order', function () {
  this.timeout(30_000);
  let redis: TestRedis;
  let conn: Redis;
  let a: Node;
  let b: Node;
  let identity: DeviceIdentity;

  async function node(nodeId: string, dir: string): Promise<Node> {
    const { ctx } = await testContext(loadSettings({ FLUX_DATA_DIR: dir, FLUX_LOG_LEVEL: 'warn' }));
    const scripts = clusterScripts(conn, 'tpresence:');
    const shared = createClusterPresence(nodeId, () => scripts);
    const n = { ctx, shared, writeDelayMs: 0 } as Node;
    const write = ctx.registry.devices.setStatuses.bind(ctx.registry.devices);
    ctx.registry.devices.setStatuses = async (changes) => {
      if (n.writeDelayMs) await new Promise((r) => setTimeout(r, n.writeDelayMs));
      await write(changes);
    };
    n.presence = createPresence(ctx, shared);
    return n;
  }

  const stored = async () => (await a.ctx.registry.devices.get('t1'))?.status;

  before(async () => {
    redis = await startRedis();
    conn = new Redis(redis.url, { keyPrefix: 'tpresence:', lazyConnect: true });
    await conn.connect();
    const dir = tempDir('flux-presence-order-');
    a = await node('node-a', dir);
    b = await node('node-b', dir);
    const product = await a.ctx.registry.products.create({ key: 'thermo', name: 'Thermometer' });
    await a.ctx.registry.devices.create({ id: 't1', product_id: product.id, secret: 'secret-t1-0123456789abc' });
    identity = (await a.ctx.registry.devices.identity('t1'))!;
  });
  after(async () => {
    for (const n of [a, b]) {
      await n?.presence.flush();
      await n?.ctx.registry.stop();
    }
    conn?.disconnect();
    await redis?.stop();
  });

  it("ends online when the old node's offline lands after the new node's online", async () => {
    const releaseOnA = a.presence.connected(identity, 'mqtt');
    await a.shared.settled();
    await a.presence.flush();
    assert.equal(await stored(), 'online');

    a.writeDelayMs = 300; // A's database is slow: its "offline" lands last
    releaseOnA('taken over by another node');
    await a.shared.settled(); // Redis: A released it, no node holds it → offline
    const releaseOnB = b.presence.connected(identity, 'mqtt');
    await b.shared.settled(); // Redis: B holds it → online
    await b.presence.flush();
    assert.equal(await stored(), 'online', "B's write landed");
    await a.presence.flush();
    assert.deepEqual(await a.shared.online(['t1']), [true]);
    assert.equal(await stored(), 'online', "after A's late write: the cluster's answer");

    a.writeDelayMs = 0;
    releaseOnB('closed');
    await b.shared.settled();
    await b.presence.flush();
    assert.equal(await stored(), 'offline');
  });
});
