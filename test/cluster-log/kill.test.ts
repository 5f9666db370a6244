/**
 * Two real FLUX processes in cluster mode sharing NATS JetStream (the uplink log) and one
 * PostgreSQL database (metadata and time series): devices publish QoS 1 to both; one node is
 * killed with SIGKILL under load, its devices reconnect to the survivor, which takes the dead
 * node's partitions over. Every acknowledged uplink is stored exactly once; the only rows beyond
 * them are uplinks the dead node had stored before the kill cut their PUBACK.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';
import { createTestDatabase, rawSql, type TestDatabase } from '../helpers/databases.ts';
import { until } from '../helpers/wait.ts';
import { dropCluster, NATS_URL, uniqueName } from './nodes.ts';

const DEVICES = 20;
const BASE_TS = 1_750_000_000_000;
const TOTAL = 6000;

interface Device {
  id: string;
  secret: string;
  client?: MqttClient;
  node?: 'a' | 'b';
  next: number;
}

const partitionsOf = async (flux: FluxProcess): Promise<number[]> => (await flux.api('GET', '/api/health')).body.components.uplink_log.partitions;

describe('cluster log: two FLUX nodes, one killed with SIGKILL under load', function () {
  this.timeout(120_000);
  let db: TestDatabase | undefined;
  const name = uniqueName('kill');
  const nodes: FluxProcess[] = [];
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const n of nodes) fs.rmSync(n.dataDir, { recursive: true, force: true });
    await db?.drop();
    await dropCluster(name);
  });

  it('stores every acknowledged uplink once: the survivor processes the dead node\'s partitions', async () => {
    db = await createTestDatabase('postgres', 'cluster_log');
    const env = { FLUX_DB_URL: db.url, FLUX_TS_URL: db.url, FLUX_NATS_URL: NATS_URL, FLUX_NATS_NAME: name, FLUX_LOG_LEASE: '2s', FLUX_LOG_PARTITIONS: '8', FLUX_LOG_LEVEL: 'warn' };
    const a = await startFlux(env, { dataDir: tempDir('flux-cluster-a-') });
    nodes.push(a);
    assert.equal((await a.api('POST', '/api/products', { key: 'meter', name: 'Meter', metadata: { properties: [{ id: 'n', type: 'int' }] } })).status, 201);
    const devices: Device[] = [];
    for (let i = 0; i < DEVICES; i++) {
      const d = await a.api('POST', '/api/devices', { id: `m${i}`, product_id: 'meter' });
      assert.equal(d.status, 201, JSON.stringify(d.body));
      devices.push({ id: `m${i}`, secret: d.body.secret, next: 0 });
    }
    const b = await startFlux(env, { dataDir: tempDir('flux-cluster-b-') });
    nodes.push(b);
    await until('both nodes hold partitions', async () => {
      const [pa, pb] = await Promise.all([partitionsOf(a), partitionsOf(b)]);
      return pa.length && pb.length && new Set([...pa, ...pb]).size === 8 ? true : undefined;
    }, 20_000);

    const acked = new Map<string, Set<number>>(devices.map((d) => [d.id, new Set()]));
    /** sent to b and not acknowledged when b was killed: b may have stored them */
    const cutOff = new Set<string>();
    let sent = 0;
    const connect = (d: Device, to: FluxProcess, node: 'a' | 'b') => {
      d.client = mqtt.connect(`mqtt://127.0.0.1:${to.mqtt}`, { username: d.id, password: d.secret, clientId: d.id, reconnectPeriod: 0, connectTimeout: 5000 });
      d.client.on('error', () => {});
      d.node = node;
    };
    devices.forEach((d, i) => connect(d, i % 2 ? b : a, i % 2 ? 'b' : 'a'));
    const inFlight = new Map<string, Set<number>>(devices.map((d) => [d.id, new Set()]));
    let d = 0;
    const load = setInterval(() => {
      for (let k = 0; k < 10 && sent < TOTAL; k++) {
        const dev = devices[d++ % DEVICES]!;
        if (!dev.client?.connected) continue;
        const n = dev.next++;
        sent++;
        inFlight.get(dev.id)!.add(n);
        dev.client.publish(`/meter/${dev.id}/properties/report`, JSON.stringify({ values: { n }, ts: BASE_TS + n }), { qos: 1 }, (err) => {
          if (err) return;
          inFlight.get(dev.id)!.delete(n);
          acked.get(dev.id)!.add(n);
        });
      }
    }, 10);
    const ackedCount = () => [...acked.values()].reduce((s, l) => s + l.size, 0);
    try {
      await until('a third acknowledged', () => (ackedCount() >= TOTAL / 3 ? true : undefined), 30_000);
      b.child.kill('SIGKILL');
      await new Promise((r) => b.child.once('exit', r));
      // the load balancer's part: b's devices reconnect to a
      for (const dev of devices.filter((x) => x.node === 'b')) {
        for (const n of inFlight.get(dev.id)!) cutOff.add(`${dev.id}#${n}`);
        inFlight.get(dev.id)!.clear();
        dev.client!.end(true);
        connect(dev, a, 'a');
      }
      await until('a holds every partition', async () => ((await partitionsOf(a)).length === 8 ? true : undefined), 15_000);
      await until('the rest sent', () => (sent >= TOTAL ? true : undefined), 60_000);
      await until('the last acknowledgements', () => ([...inFlight.values()].every((s) => s.size === 0) ? true : undefined), 15_000);
    } finally {
      clearInterval(load);
      for (const dev of devices) dev.client?.end(true);
    }

    const sql = await rawSql(db.url);
    const rows = () => sql.query<{ d: string; ts: string; v: number }>("SELECT s.device_id AS d, p.ts AS ts, p.num AS v FROM ts_points p JOIN ts_series s ON s.id = p.series_id WHERE s.metric = 'n'");
    const missing = async () => {
      const stored = new Set((await rows()).map((r) => `${r.d}#${Number(r.ts) - BASE_TS}`));
      return [...acked].flatMap(([dev, ns]) => [...ns].filter((n) => !stored.has(`${dev}#${n}`)).map((n) => `${dev}#${n}`));
    };
    await until('every acknowledged uplink stored', async () => ((await missing()).length === 0 ? true : undefined), 40_000).catch(async (err) => {
      throw new Error(`${(err as Error).message}: missing ${(await missing()).slice(0, 20).join(', ')}`);
    });
    const all = await rows();
    await sql.close();
    const seen = new Set<string>();
    for (const r of all) {
      const key = `${r.d}#${Number(r.ts) - BASE_TS}`;
      assert.ok(!seen.has(key), `${key} stored twice`);
      seen.add(key);
      assert.equal(r.v, Number(r.ts) - BASE_TS, `${key}: the row holds its own message`);
      const isAcked = acked.get(r.d)!.has(r.v);
      assert.ok(isAcked || cutOff.has(key), `${key} stored but never acknowledged nor cut off by the kill`);
    }
    // the raw traffic API on the survivor reads the shared stream: a device's newest uplinks, whichever node received them
    const raw = await a.api('GET', '/api/devices/m1/raw?order=desc&limit=5&encoding=base64');
    assert.equal(raw.status, 200, JSON.stringify(raw.body));
    const newest = raw.body.items.map((i: { payload: string }) => JSON.parse(Buffer.from(i.payload, 'base64').toString()).values.n);
    const m1 = [...acked.get('m1')!].sort((x, y) => y - x);
    assert.deepEqual(newest, m1.slice(0, 5));
    const ackedTotal = ackedCount();
    assert.ok(ackedTotal >= TOTAL * 0.9, `${ackedTotal} of ${sent} acknowledged`);
    assert.equal(all.length - [...cutOff].filter((k) => seen.has(k)).length, ackedTotal, 'stored rows = acknowledged uplinks (+ those whose PUBACK the kill cut)');
  });
});
