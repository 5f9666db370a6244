/**
 * GET /api/cluster without FLUX_REDIS_URL (in-process FLUX): one node, itself, with its health,
 * connections, devices online and uplinks per second; a viewer may read it, nobody else.
 */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';

describe('GET /api/cluster on a single node', function () {
  this.timeout(30_000);
  let flux: Flux;
  let base: string;
  let mqttPort: number;
  const call = async (method: string, p: string, body?: unknown, headers: Record<string, string> = { authorization: `Bearer ${TEST_TOKEN}` }) => {
    const res = await fetch(base + p, { method, headers: { ...headers, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json().catch(() => undefined)) as any };
  };

  before(async () => {
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN, FLUX_NODE_ID: 'solo' });
    flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
    const ports = await flux.start();
    base = `http://127.0.0.1:${ports.http}`;
    mqttPort = ports.mqtt;
  });
  after(async () => {
    await flux?.stop();
  });

  it('lists this node with its connections, devices online and uplinks per second', async () => {
    assert.equal((await call('POST', '/api/products', { key: 'gauge', name: 'Gauge' })).status, 201);
    const secret = (await call('POST', '/api/devices', { id: 'g1', product_id: 'gauge' })).body.secret as string;
    const device = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'g1', username: 'g1', password: secret, reconnectPeriod: 0 });
    try {
      await call('GET', '/api/cluster'); // opens a throughput period
      for (let i = 0; i < 20; i++) await device.publishAsync('/gauge/g1/properties/report', JSON.stringify({ v: i }), { qos: 1 });
      await new Promise((r) => setTimeout(r, 1100));
      const r = await call('GET', '/api/cluster');
      assert.equal(r.status, 200);
      assert.equal(r.body.mode, 'single');
      assert.equal(r.body.self, 'solo');
      assert.equal(r.body.nodes.length, 1);
      const me = r.body.nodes[0];
      assert.equal(me.id, 'solo');
      assert.equal(me.status, 'up');
      assert.equal(me.self, true);
      assert.equal(me.healthy, true, JSON.stringify(me.failing));
      assert.equal(me.mqtt_connections, 1);
      assert.equal(me.devices_online, 1);
      assert.equal(me.mqtt_port, mqttPort);
      assert.equal(me.http_port, Number(new URL(base).port));
      // 20 uplinks over the time between the two calls (at least 1.1 s; far less than 10 s)
      assert.ok(me.uplinks_per_s > 20 / 10 && me.uplinks_per_s <= 20 / 1.1, `uplinks_per_s ${me.uplinks_per_s}`);
      assert.deepEqual(r.body.totals, { nodes_up: 1, mqtt_connections: 1, devices_online: 1, uplinks_per_s: me.uplinks_per_s });
    } finally {
      await device.endAsync();
    }
  });

  it('is for viewers and up, and takes no query parameters', async () => {
    assert.equal((await call('GET', '/api/cluster', undefined, {})).status, 401);
    const viewer = await call('POST', '/api/users', { username: 'watcher', password: 'watcher-password-1', role: 'viewer' });
    assert.equal(viewer.status, 201, JSON.stringify(viewer.body));
    const login = await call('POST', '/api/auth/login', { username: 'watcher', password: 'watcher-password-1' }, {});
    assert.equal((await call('GET', '/api/cluster', undefined, { authorization: `Bearer ${login.body.token}` })).status, 200);
    const r = await call('GET', '/api/cluster?verbose=1');
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'unknown_parameter');
  });
});
