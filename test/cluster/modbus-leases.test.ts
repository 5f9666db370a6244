/**
 * The Modbus endpoint leases (runtime/cluster/modbus-leases.ts) on a redis-server of the test's own:
 * a node takes free endpoints up to its share of the nodes listed, lets go of the extra ones when a
 * node joins, renews its own, and a silent node's endpoints are free once its leases expire.
 */
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { createModbusLeases } from '../../runtime/cluster/modbus-leases.ts';
import { startRedis, type TestRedis } from './cluster.ts';

const ENDPOINTS = ['10.0.0.1:502/tcp', '10.0.0.2:502/tcp', '10.0.0.3:502/tcp', '10.0.0.4:502/rtu-over-tcp'];
const PREFIX = 'tleases:';

describe('cluster: Modbus endpoint leases', function () {
  this.timeout(20_000);
  let redis: TestRedis;
  let conn: Redis;
  before(async () => {
    redis = await startRedis();
    conn = new Redis(redis.url, { keyPrefix: PREFIX, lazyConnect: true });
    await conn.connect();
  });
  after(async () => {
    conn?.disconnect();
    await redis?.stop();
  });

  it('spreads the endpoints over the nodes listed, gives up extras when a node joins, and frees a silent node\'s after the lease', async () => {
    const a = createModbusLeases('node-a', () => conn);
    const b = createModbusLeases('node-b', () => conn);
    await conn.hset('nodes', 'node-a', '{}');
    const alone = await a.claim(ENDPOINTS, 5000);
    assert.deepEqual([...alone!].sort(), ENDPOINTS, 'alone, node-a takes every endpoint');
    assert.equal(await conn.get(`modbus:${ENDPOINTS[0]}`), 'node-a');

    await conn.hset('nodes', 'node-b', '{}');
    assert.equal((await b.claim(ENDPOINTS, 5000))!.size, 0, 'node-b finds none free');
    const kept = await a.claim(ENDPOINTS, 5000);
    assert.equal(kept!.size, 2, 'node-a keeps its share of two and lets go of the others');
    const taken = await b.claim(ENDPOINTS, 5000);
    assert.deepEqual([...taken!, ...kept!].sort(), ENDPOINTS, 'node-b takes the other two');
    assert.deepEqual([...(await a.claim(ENDPOINTS, 5000))!].sort(), [...kept!].sort(), 'renewals keep them where they are');

    // node-a goes silent: its leases expire (short ones here) and it leaves the node list
    await a.claim(ENDPOINTS, 300);
    await conn.hdel('nodes', 'node-a');
    assert.equal((await b.claim(ENDPOINTS, 5000))!.size, 2, 'while node-a\'s leases run, node-b holds its own two');
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual([...(await b.claim(ENDPOINTS, 5000))!].sort(), ENDPOINTS, 'then node-b takes all four');
  });

  it('answers undefined when Redis cannot be asked, so that the master keeps what it polls', async () => {
    const broken = createModbusLeases('node-x', () => {
      throw new Error('cluster node not started');
    });
    assert.equal(await broken.claim(ENDPOINTS, 5000), undefined);
    assert.deepEqual([...(await broken.claim([], 5000))!], [], 'no endpoints: nothing to ask');
  });
});
