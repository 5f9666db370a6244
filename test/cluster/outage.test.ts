/**
 * Cluster mode when Redis is not there (docs/cluster.md; bounded and safe against a Redis that goes away): down at start is one
 * clear configuration error; paused, the nodes wait and then catch up; killed and restarted empty, a node keeps
 * serving its own clients, refuses new ones with "server unavailable" meanwhile, and re-registers
 * itself and its devices once Redis is back. Every Redis here is the test's own.
 */
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';
import { createFlux } from '../../runtime/app/index.ts';
import { ConfigError } from '../../runtime/errors/index.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { loadSettings } from '../../settings.ts';
import { HEARTBEAT_MS, connect, freePort, registerDevices, startCluster, until, type TestCluster, type TestNode } from './cluster.ts';

const PRODUCT = 'pump';

async function metric(node: TestNode, name: string): Promise<number> {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(String((await node.api('GET', '/api/metrics')).body));
  return m ? Number(m[1]) : 0;
}

describe('cluster: Redis unreachable', function () {
  this.timeout(60_000);

  it('refuses to start, with one line naming FLUX_REDIS_URL, when Redis cannot be reached', async () => {
    const port = await freePort();
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN, FLUX_REDIS_URL: `redis://127.0.0.1:${port}`, FLUX_CREDENTIAL_SECRET: 'outage-credential-secret-0123' });
    const flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
    const err = await flux.start().then(
      () => assert.fail('FLUX started without Redis'),
      (e: Error) => e,
    );
    // a ConfigError: the CLI prints its message as the one line before exiting with 2 (runtime/cli.ts)
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.variable, 'FLUX_REDIS_URL');
    assert.equal(err.message, `FLUX_REDIS_URL=redis://127.0.0.1:${port}: Redis cannot be reached (ECONNREFUSED); cluster mode needs it (unset FLUX_REDIS_URL to run a single node)`);
  });

  describe('two nodes', function () {
    let c: TestCluster;
    let a: TestNode, b: TestNode;
    let secrets: Record<string, string>;
    const clients: MqttClient[] = [];
    const track = (cl: MqttClient) => (clients.push(cl), cl);

    before(async function () {
      this.timeout(180_000);
      c = await startCluster(2);
      [a, b] = c.nodes as [TestNode, TestNode];
      secrets = await registerDevices(a, PRODUCT, ['p1', 'p2', 'p3']);
    });
    afterEach(async () => {
      await Promise.all(clients.splice(0).map((cl) => cl.endAsync(true).catch(() => undefined)));
    });
    after(async () => {
      await c?.stop();
    });

    it('waits while Redis is paused and then delivers everything, here and on the other node', async () => {
      const here = track(await connect(a, { clientId: 'watch-a', username: 'platform', password: TEST_TOKEN }));
      const there = track(await connect(b, { clientId: 'watch-b', username: 'platform', password: TEST_TOKEN }));
      const gotHere: number[] = [];
      const gotThere: number[] = [];
      here.on('message', (_t, p) => gotHere.push(JSON.parse(String(p)).n));
      there.on('message', (_t, p) => gotThere.push(JSON.parse(String(p)).n));
      await here.subscribeAsync(`/${PRODUCT}/p1/#`, { qos: 1 });
      await there.subscribeAsync(`/${PRODUCT}/p1/#`, { qos: 1 });
      const dev = track(await connect(a, { clientId: 'p1', username: 'p1', password: secrets.p1 }));
      const before = await metric(a, 'flux_pipeline_messages_total');
      await c.redis.cli('CLIENT', 'PAUSE', '2000', 'ALL');
      const sent = Array.from({ length: 20 }, (_, n) => dev.publishAsync(`/${PRODUCT}/p1/properties/report`, JSON.stringify({ n }), { qos: 1 }));
      await Promise.all(sent); // every PUBACK, once Redis answers again
      await until(() => gotHere.length >= 20 && gotThere.length >= 20, 'all 20 on both nodes');
      assert.deepEqual(gotHere, [...Array(20).keys()]);
      assert.deepEqual(gotThere, [...Array(20).keys()]);
      await until(async () => (await metric(a, 'flux_pipeline_messages_total')) - before >= 20, 'processed on A');
    });

    it('keeps serving its clients through a Redis restart that lost everything, refusing new ones meanwhile, and re-registers after', async () => {
      const watcher = track(await connect(a, { clientId: 'watch-a2', username: 'platform', password: TEST_TOKEN }));
      const got: number[] = [];
      watcher.on('message', (_t, p) => got.push(JSON.parse(String(p)).n));
      await watcher.subscribeAsync(`/${PRODUCT}/p2/#`, { qos: 1 });
      const dev = track(await connect(a, { clientId: 'p2', username: 'p2', password: secrets.p2 }));
      await until(async () => (await b.api('GET', '/api/devices/p2')).body.status === 'online', 'p2 online');
      const before = await metric(a, 'flux_pipeline_messages_total');

      await c.redis.kill();
      for (let n = 0; n < 10; n++) await dev.publishAsync(`/${PRODUCT}/p2/properties/report`, JSON.stringify({ n }), { qos: 1 });
      await until(() => got.length >= 10, 'delivered to the local subscriber without Redis');
      await until(async () => (await metric(a, 'flux_pipeline_messages_total')) - before >= 10, 'processed without Redis');
      const refused = await connect(a, { clientId: 'late', username: 'platform', password: TEST_TOKEN }).then(
        (cl) => (track(cl), undefined),
        (e: Error & { code?: number }) => e,
      );
      assert.ok(refused, 'a new connection is refused while Redis is down');
      assert.equal(refused.code, 3, `CONNACK "server unavailable": ${refused.message}`);
      assert.equal((await a.api('GET', '/api/health')).status, 503, 'health says the node is degraded');

      await c.redis.restart(); // empty: no nodes, no presence, no sessions
      for (const n of [a, b]) {
        await until(async () => {
          const r = await n.api('GET', '/api/cluster');
          return r.status === 200 && r.body.nodes.filter((x: { status: string }) => x.status === 'up').length === 2;
        }, `${n.id} lists both nodes again`, 6 * HEARTBEAT_MS, 100);
      }
      // p2 is still connected to A: A re-registered it, so B routes a command to it through A
      const cmd = new Promise<string>((resolve) => dev.on('message', (_t, p) => resolve(JSON.parse(String(p)).command)));
      await dev.subscribeAsync(`/${PRODUCT}/p2/command`, { qos: 1 });
      const r = await b.api('POST', '/api/devices/p2/commands', { command: 'after-restart' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(await cmd, 'after-restart');
      track(await connect(a, { clientId: 'late', username: 'platform', password: TEST_TOKEN }));
      assert.equal(a.child.exitCode, null, 'node A never exited');
      assert.equal(b.child.exitCode, null, 'node B never exited');
    });

    it('closes the connection a device holds on A when B disabled it while Redis was down (the notice was lost), once Redis is back', async () => {
      const dev = track(await connect(a, { clientId: 'p3', username: 'p3', password: secrets.p3, protocolVersion: 5 }));
      let told: number | undefined;
      let closed = false;
      dev.on('disconnect', (p) => (told = p.reasonCode));
      dev.on('close', () => (closed = true));
      await until(async () => (await b.api('GET', '/api/devices/p3')).body.status === 'online', 'p3 online');

      await c.redis.kill();
      // the change reaches the shared database; its notice to A cannot travel
      const r = await b.api('PATCH', '/api/devices/p3', { enabled: false });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      await new Promise((resolve) => setTimeout(resolve, 2 * HEARTBEAT_MS));
      assert.equal(closed, false, 'still connected on A while Redis is down: A has not heard of the change');

      await c.redis.restart();
      // A's change listener reconnects, and A checks every device connected to it
      await until(() => closed, 'the connection on A closed after the reconnection', 6 * HEARTBEAT_MS + 10_000);
      assert.equal(told, 0x98);
      await assert.rejects(connect(a, { clientId: 'p3', username: 'p3', password: secrets.p3, protocolVersion: 5 }), (err: { code?: number }) => err.code === 0x87);
    });
  });
});
