/**
 * The shared Node-RED context store (runtime/cluster/context-store.ts) through Node-RED's store API,
 * on a redis-server of the test's own: values, nested keys and several keys at once, the bounds per
 * value, keys and bytes of a scope (refused with a reason, the scope unchanged), synchronous access
 * refused, delete, and clean keeping global and the scopes of deployed nodes; nested sets from two
 * stores at once all kept, and a nested set whose value keeps changing under it failing after 10
 * attempts. The same store behind real flows on two processes: flow-state.test.ts.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { createLogger } from '../../runtime/log/index.ts';
import { CONTEXT_LIMITS, redisContextModule, type NodeRedContextStore } from '../../runtime/cluster/context-store.ts';
import { startRedis, type TestRedis } from './cluster.ts';

const PREFIX = 'ctx-test:';

describe('the shared context store on Redis', function () {
  this.timeout(30_000);
  let redis: TestRedis;
  let store: NodeRedContextStore;
  const get = (scope: string, key: string | string[]) =>
    new Promise<unknown[]>((resolve, reject) => store.get(scope, key, (err, ...values) => (err ? reject(err) : resolve(values))));
  const set = (scope: string, key: string | string[], value: unknown) => new Promise<void>((resolve, reject) => store.set(scope, key, value, (err) => (err ? reject(err) : resolve())));
  const keys = (scope: string) => new Promise<unknown>((resolve, reject) => store.keys(scope, (err, k) => (err ? reject(err) : resolve(k))));
  const setOn = (s: NodeRedContextStore, scope: string, key: string, value: unknown) => new Promise<void>((resolve, reject) => s.set(scope, key, value, (err) => (err ? reject(err) : resolve())));
  const getOn = (s: NodeRedContextStore, scope: string, key: string) => new Promise<unknown>((resolve, reject) => s.get(scope, key, (err, v) => (err ? reject(err) : resolve(v))));
  const openStore = async (url: string, prefix: string) => {
    const s = redisContextModule({ target: { url, prefix }, log: createLogger({ level: 'silent' }), limits: CONTEXT_LIMITS })();
    await s.open();
    return s;
  };

  before(async () => {
    redis = await startRedis();
    store = redisContextModule({ target: { url: redis.url, prefix: PREFIX }, log: createLogger({ level: 'silent' }), limits: { maxValueBytes: 64, maxKeys: 3, maxScopeBytes: 100 } })();
    await store.open();
  });
  after(async () => {
    await store?.close();
    await redis?.stop();
  });

  it('stores JSON values per scope, nested keys inside their top-level value, several keys at once', async () => {
    await set('global', 'n', 1);
    await set('global', 'obj.a.b', 'deep');
    assert.deepEqual(await get('global', 'n'), [1]);
    assert.deepEqual(await get('global', 'obj'), [{ a: { b: 'deep' } }]);
    assert.deepEqual(await get('global', 'obj.a["b"]'), ['deep']);
    assert.deepEqual(await get('flow-1', 'n'), [undefined]);
    assert.deepEqual(await get('global', 'none.a.b'), [undefined]);
    await assert.rejects(get('global', 'a..b'), /Invalid property expression/);
    await set('flow-1', ['x', 'y'], [true, 'two']);
    assert.deepEqual(await get('flow-1', ['x', 'y', 'missing']), [true, 'two', undefined]);
    assert.deepEqual(((await keys('flow-1')) as string[]).sort(), ['x', 'y']);
    assert.equal(await redis.cli('hget', `${PREFIX}context:global`, 'obj'), '{"a":{"b":"deep"}}');
  });

  it('refuses a value, a key or bytes past the bounds with a reason, and leaves the scope as it was', async () => {
    await assert.rejects(set('s', 'big', 'x'.repeat(80)), /context value of 'big' is 82 bytes; the shared context store takes at most 64 per value/);
    await set('s', ['k1', 'k2', 'k3'], ['a', 'b', 'c']);
    await assert.rejects(set('s', 'k4', 'd'), /context scope s would hold 4 keys; the shared context store holds at most 3 per scope/);
    // replacing a key is not a new key; deleting one (undefined) makes room
    await set('s', 'k1', 'A');
    await set('s', 'k2', undefined);
    await set('s', 'k4', 'd');
    assert.deepEqual(await get('s', ['k1', 'k2', 'k3', 'k4']), ['A', undefined, 'c', 'd']);
    await set('t', ['a', 'b'], ['y'.repeat(45), 'z'.repeat(45)]);
    await assert.rejects(set('t', 'c', 'w'.repeat(20)), /context scope t would hold 116 bytes; the shared context store holds at most 100 per scope/);
    assert.deepEqual(((await keys('t')) as string[]).sort(), ['a', 'b']);
    assert.equal(await redis.cli('get', `${PREFIX}context-bytes:t`), '94');
  });

  it('refuses synchronous get and keys with the way to do it', () => {
    assert.throws(() => store.get('global', 'n'), /answers through a callback.*"local"/);
    assert.throws(() => store.keys('global'), /answers through a callback/);
  });

  it('deletes a scope, and cleans every scope but global whose node is no longer deployed', async () => {
    await set('node-a:flow-1', 'v', 1);
    await set('node-gone:flow-1', 'v', 2);
    await set('flow-gone', 'v', 3);
    await store.clean(['node-a', 'flow-1', 's', 't']);
    const left = (await redis.cli('--scan', '--pattern', `${PREFIX}context:*`)).split('\n').filter(Boolean).sort();
    assert.deepEqual(left, ['flow-1', 'global', 'node-a:flow-1', 's', 't'].map((x) => `${PREFIX}context:${x}`));
    assert.equal(await redis.cli('exists', `${PREFIX}context-bytes:node-gone:flow-1`), '0');
    await store.delete('s');
    assert.deepEqual(await get('s', 'k1'), [undefined]);
    assert.equal(await redis.cli('exists', `${PREFIX}context-bytes:s`), '0');
  });

  it('keeps every one of many nested sets of one value made at once from two stores', async () => {
    const a = await openStore(redis.url, 'ctx-race:');
    const b = await openStore(redis.url, 'ctx-race:');
    try {
      await setOn(a, 'global', 'obj', { start: true });
      await Promise.all(Array.from({ length: 50 }, (_v, i) => setOn(i % 2 ? a : b, 'global', `obj.k${i}`, i)));
      const expected = Object.fromEntries([['start', true], ...Array.from({ length: 50 }, (_v, i) => [`k${i}`, i])]);
      assert.deepEqual(await getOn(a, 'global', 'obj'), expected);
      assert.equal(await redis.cli('get', 'ctx-race:context-bytes:global'), String(Buffer.byteLength(JSON.stringify(expected))));
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('fails a nested set with a reason after 10 attempts when another writer changes the value before each write', async () => {
    // every write of the store under test (an EVAL/EVALSHA through this proxy) waits until a second
    // store has rewritten the value, so each compare-and-set finds it changed
    const rival = await openStore(redis.url, 'ctx-rival:');
    const tested = { store: undefined as NodeRedContextStore | undefined };
    let rivalWrites = 0;
    const proxy = net.createServer((client) => {
      const upstream = net.connect(redis.port, '127.0.0.1');
      upstream.pipe(client);
      client.on('data', (chunk: Buffer) => {
        if (!/eval/i.test(chunk.toString('latin1'))) return void upstream.write(chunk);
        client.pause();
        rivalWrites++;
        setOn(rival, 'global', 'obj', { rival: rivalWrites }).then(() => {
          upstream.write(chunk);
          client.resume();
        }, (err: Error) => client.destroy(err));
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', () => resolve()));
    try {
      tested.store = await openStore(`redis://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`, 'ctx-rival:');
      await assert.rejects(setOn(tested.store, 'global', 'obj.mine', 1), /context value 'obj' of scope global changed under this set 10 times in a row \(another writer\); the nested key 'obj.mine' was not stored/);
      assert.equal(rivalWrites, 10);
      assert.deepEqual(await getOn(rival, 'global', 'obj'), { rival: 10 });
      // a top-level set needs no read, so nothing can change under it
      await setOn(tested.store, 'global', 'obj', { mine: 1 });
      assert.deepEqual(await getOn(rival, 'global', 'obj'), { mine: 1 });
    } finally {
      await tested.store?.close();
      await rival.close();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});
