/**
 * Issue 18's headline test: three real FLUX processes sharing a Redis of the test's own, the
 * uplink log on NATS JetStream (:4222, names unique per run, deleted after) and one PostgreSQL
 * database (cluster_e2e_*, dropped after). 30 devices spread over the nodes send 20,000 QoS 1
 * uplinks; one node is killed with SIGKILL mid-way and its devices reconnect to the others (each
 * mqtt.js client has the three nodes' ports as its server list: the load balancer's part).
 * Afterwards the stored rows are the acknowledged uplinks, each once, plus only uplinks whose
 * PUBACK the kill cut off.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { QueryTypes, Sequelize } from 'sequelize';
import { startCluster, until, type TestCluster, type TestNode } from './cluster.ts';
import { dropCluster, NATS_URL, uniqueName } from '../cluster-log/nodes.ts';

const DEVICES = 30;
const TOTAL = 20_000;
/** QoS 1 publishes a device has waiting for their PUBACK at most */
const WINDOW = 16;
const PARTITIONS = 12;
const BASE_TS = 1_750_000_000_000;

interface Device {
  id: string;
  client: MqttClient;
  /** the MQTT port of the node it is connected to now */
  port: number;
  next: number;
  inFlight: Set<number>;
  acked: Set<number>;
}

const partitionsOf = async (n: TestNode): Promise<number[]> => (await n.api('GET', '/api/health')).body.components.uplink_log?.partitions ?? [];

describe('cluster: three nodes, 20,000 QoS 1 uplinks, one node killed with SIGKILL mid-way', function () {
  this.timeout(150_000);
  let c: TestCluster | undefined;
  const name = uniqueName('three');
  after(async () => {
    const dirs = c?.nodes.map((n) => n.dataDir) ?? [];
    await c?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    await dropCluster(name);
  });

  it('stores every acknowledged uplink exactly once: 0 lost, 0 duplicated', async () => {
    const t0 = Date.now();
    c = await startCluster(3, { FLUX_NATS_URL: NATS_URL, FLUX_NATS_NAME: name, FLUX_LOG_LEASE: '2s', FLUX_LOG_PARTITIONS: String(PARTITIONS) }, 'cluster_e2e');
    const [a, b, dead] = c.nodes as [TestNode, TestNode, TestNode];
    const ports = c.nodes.map((n) => n.mqtt);
    assert.equal((await a.api('POST', '/api/products', { key: 'meter', name: 'Meter', metadata: { properties: [{ id: 'n', type: 'int' }] } })).status, 201);
    const ids = Array.from({ length: DEVICES }, (_, i) => `e${i}`);
    const secrets: Record<string, string> = {};
    for (const id of ids) {
      const d = await a.api('POST', '/api/devices', { id, product_id: 'meter' });
      assert.equal(d.status, 201, JSON.stringify(d.body));
      secrets[id] = d.body.secret;
    }
    await until(async () => {
      const held = await Promise.all(c!.nodes.map(partitionsOf));
      return held.every((p) => p.length > 0) && new Set(held.flat()).size === PARTITIONS;
    }, 'the three nodes share the partitions', 30_000, 200);

    // round-robin over the nodes; on a lost connection mqtt.js tries the next port of its list
    const devices: Device[] = ids.map((id, i) => {
      const servers = [0, 1, 2].map((k) => ({ host: '127.0.0.1', port: ports[(i + k) % 3]! }));
      const client = mqtt.connect({ servers, clientId: id, username: id, password: secrets[id], reconnectPeriod: 200, connectTimeout: 3000, clean: true });
      const dev: Device = { id, client, port: 0, next: 0, inFlight: new Set(), acked: new Set() };
      client.on('connect', () => {
        dev.port = client.options.port!;
        pump();
      });
      client.on('error', () => {});
      return dev;
    });
    let sent = 0;
    const ackedCount = () => devices.reduce((s, d) => s + d.acked.size, 0);
    function pump() {
      for (const dev of devices) {
        while (dev.client.connected && dev.inFlight.size < WINDOW && sent < TOTAL) {
          const n = dev.next++;
          sent++;
          dev.inFlight.add(n);
          dev.client.publish(`/meter/${dev.id}/properties/report`, JSON.stringify({ values: { n }, ts: BASE_TS + n }), { qos: 1 }, (err) => {
            // an error here is a publish mqtt.js gave up on: neither acknowledged nor counted
            if (err) return;
            dev.inFlight.delete(n);
            dev.acked.add(n);
            pump();
          });
        }
      }
    }
    const tick = setInterval(pump, 50);
    /** publishes sent to the killed node and not acknowledged when it died: it may have stored them */
    const cutOff = new Set<string>();
    let onDead: Device[] = [];
    let tLoad: number | undefined;
    try {
      await until(() => devices.every((d) => d.port), 'every device connected', 20_000);
      tLoad = Date.now();
      assert.deepEqual(new Set(devices.map((d) => d.port)).size, 3, 'devices on all three nodes');
      await until(() => ackedCount() >= TOTAL / 2, 'half the uplinks acknowledged', 60_000);
      onDead = devices.filter((d) => d.port === dead.mqtt);
      assert.ok(onDead.length >= DEVICES / 3 - 1, `${onDead.length} devices on the node to kill`);
      dead.child.kill('SIGKILL');
      await new Promise((r) => dead.child.once('exit', r));
      for (const d of onDead) for (const n of d.inFlight) cutOff.add(`${d.id}#${n}`);

      await until(() => onDead.every((d) => d.client.connected && d.port !== dead.mqtt), 'the dead node\'s devices reconnected to the others', 20_000);
      await until(async () => {
        const held = await Promise.all([a, b].map(partitionsOf));
        return new Set(held.flat()).size === PARTITIONS;
      }, 'the survivors hold every partition', 20_000, 200);
      await until(() => sent >= TOTAL, 'all 20,000 sent', 60_000);
      await until(() => devices.every((d) => d.inFlight.size === 0), 'every PUBACK', 30_000);
    } finally {
      clearInterval(tick);
      await Promise.all(devices.map((d) => d.client.endAsync(true).catch(() => undefined)));
    }
    const tLoaded = Date.now();

    const sql = new Sequelize(c.db.url, { dialect: 'postgres', logging: false });
    const rows = () =>
      sql.query<{ d: string; ts: string; v: number }>("SELECT s.device_id AS d, p.ts AS ts, p.num AS v FROM ts_points p JOIN ts_series s ON s.id = p.series_id WHERE s.metric = 'n'", { type: QueryTypes.SELECT });
    const missingOf = (stored: { d: string; ts: string }[]) => {
      const have = new Set(stored.map((r) => `${r.d}#${Number(r.ts) - BASE_TS}`));
      return devices.flatMap((d) => [...d.acked].filter((n) => !have.has(`${d.id}#${n}`)).map((n) => `${d.id}#${n}`));
    };
    let all: { d: string; ts: string; v: number }[] = [];
    try {
      await until(async () => ((all = await rows()), missingOf(all).length === 0), 'every acknowledged uplink stored', 40_000, 250).catch((err: Error) => {
        throw new Error(`${err.message}: ${missingOf(all).length} missing, e.g. ${missingOf(all).slice(0, 10).join(', ')}`);
      });
      // the processing may still be storing the last cut-off uplinks: wait until the count is still
      let last = -1;
      await until(async () => ((all = await rows()), all.length === last || ((last = all.length), false)), 'the row count settles', 10_000, 500);
    } finally {
      await sql.close();
    }

    const seen = new Map<string, number>();
    let unexplained = 0;
    for (const r of all) {
      const n = Number(r.ts) - BASE_TS;
      const key = `${r.d}#${n}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
      assert.equal(r.v, n, `${key}: the row holds its own uplink`);
      const dev = devices.find((d) => d.id === r.d)!;
      if (!dev.acked.has(n) && !cutOff.has(key)) unexplained++;
    }
    const duplicated = [...seen.values()].filter((k) => k > 1).length;
    const acked = ackedCount();
    const storedCutOff = [...cutOff].filter((k) => seen.has(k) && !devices.find((d) => k.startsWith(`${d.id}#`))!.acked.has(Number(k.split('#')[1]))).length;
    const lost = missingOf(all).length;
    console.log(
      `      ${acked} acknowledged of ${sent} sent (${onDead.length} devices moved, ${cutOff.size} PUBACKs cut by the kill, ${storedCutOff} of those stored unacknowledged); ` +
        `${all.length} rows: lost ${lost}, duplicated ${duplicated}, unexplained ${unexplained}; load ${((tLoaded - (tLoad ?? t0)) / 1000).toFixed(1)} s, test ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
    assert.equal(lost, 0, 'acknowledged uplinks lost');
    assert.equal(duplicated, 0, 'uplinks stored twice');
    assert.equal(unexplained, 0, 'rows of uplinks never acknowledged and not cut off by the kill');
    // mqtt.js sends a publish again after a reconnect until it is acknowledged: the cut-off ones too
    assert.equal(acked, TOTAL, 'every uplink acknowledged in the end');
    assert.equal(all.length, acked + storedCutOff, 'stored rows = acknowledged + stored cut-off uplinks');
  });
});
