import assert from 'node:assert/strict';
import { collectAllGarbage, createStormCompactor } from '../../runtime/memory/index.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('memory: the storm compactor', function () {
  it('collects once a storm of connections has been quiet, not during it and not for a few connections', async function () {
    const collections: number[] = [];
    const c = createStormCompactor({ minConnections: 5, quietMs: 60, minIntervalMs: 0, collect: () => true, utilization: () => 0, onCollect: (n) => collections.push(n) });
    for (let i = 0; i < 3; i++) c.connected();
    await sleep(120);
    assert.deepEqual(collections, [], 'three connections are no storm');
    for (let i = 0; i < 4; i++) {
      c.connected();
      await sleep(20); // still stormy: each connection restarts the quiet time
    }
    assert.deepEqual(collections, [], 'nothing while connections keep arriving');
    await sleep(150);
    assert.deepEqual(collections, [7], 'one collection after the storm, counting all its connections');
    c.stop();
  });

  it('keeps at most one collection per interval', async function () {
    const collections: number[] = [];
    const c = createStormCompactor({ minConnections: 2, quietMs: 20, minIntervalMs: 300, collect: () => true, utilization: () => 0, onCollect: (n) => collections.push(n) });
    c.connected();
    c.connected();
    await sleep(80);
    c.connected();
    c.connected();
    await sleep(80);
    assert.deepEqual(collections, [2], 'the second storm waits for the interval');
    await sleep(300);
    assert.deepEqual(collections, [2, 2]);
    c.stop();
  });

  it('leaves a busy process to V8 (its own collections take the storm garbage with the traffic)', async function () {
    const collections: number[] = [];
    const busy: number[] = [];
    const c = createStormCompactor({ minConnections: 2, quietMs: 20, minIntervalMs: 0, collect: () => true, utilization: () => 0.6, onCollect: (n) => collections.push(n), onBusy: (n) => busy.push(n) });
    c.connected();
    c.connected();
    await sleep(80);
    assert.deepEqual(collections, []);
    assert.deepEqual(busy, [2]);
    c.stop();
  });

  it('measures the quiet time after the last connection, not the busy storm before it', async function () {
    const collections: number[] = [];
    const busy: number[] = [];
    // utilization since the previous call: high when a connection came in between (the storm's work)
    let stormy = false;
    const utilization = () => {
      const u = stormy ? 0.9 : 0.1;
      stormy = false;
      return u;
    };
    const c = createStormCompactor({ minConnections: 2, quietMs: 40, minIntervalMs: 0, collect: () => true, utilization, onCollect: (n) => collections.push(n), onBusy: (n) => busy.push(n) });
    for (let i = 0; i < 6; i++) {
      stormy = true;
      c.connected();
      await sleep(5);
    }
    await sleep(120);
    assert.deepEqual(busy, [], 'the storm did not count as the quiet time');
    assert.deepEqual(collections, [6]);
    c.stop();
  });

  it('borrows a real gc(): garbage goes, and no context sees a gc global', async function () {
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
    const ref = ((): WeakRef<unknown[]> => new WeakRef(Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${i}` }))))();
    await sleep(0);
    assert.equal(collectAllGarbage(), true);
    assert.equal(ref.deref(), undefined, 'the array was collected');
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'gc stays out of the main context');
  });
});
