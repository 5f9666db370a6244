/**
 * Issue 18's headline test: three real FLUX processes sharing a Redis of the test's own, the
 * uplink log on NATS JetStream (:4222, names unique per run, deleted after) and one PostgreSQL
 * database (cluster_e2e_*, dropped after). 30 devices spread over the nodes send QoS 1 uplinks
 * (test/cluster/fleet.ts: each mqtt.js client has the nodes' ports as its server list, the load
 * balancer's part).
 * 1. 20,000 uplinks; one node killed with SIGKILL mid-way, its devices reconnect to the others.
 * 2. On the two survivors, Redis killed mid-load and restarted empty.
 * Both times the stored rows are the acknowledged uplinks, each once, plus at most uplinks whose
 * PUBACK a kill cut off (mqtt.js sends those again; the store keeps one row per device and timestamp).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startCluster, until, connect, type TestCluster, type TestNode } from './cluster.ts';
import { countStored, startFleet, type StoreCount } from './fleet.ts';
import { dropCluster, NATS_URL, uniqueName } from '../cluster-log/nodes.ts';
import { TEST_TOKEN } from '../helpers/flux-process.ts';

const DEVICES = 30;
const PARTITIONS = 12;
const WINDOW = 16;

const partitionsOf = async (n: TestNode): Promise<number[]> => (await n.api('GET', '/api/health')).body.components.uplink_log?.partitions ?? [];

async function metric(node: TestNode, name: string, label = ''): Promise<number> {
  const m = new RegExp(`^${name}(?:\\{[^}]*${label}[^}]*\\})? (\\S+)$`, 'm').exec(String((await node.api('GET', '/api/metrics')).body));
  return m ? Number(m[1]) : 0;
}

function report(what: string, acked: number, sent: number, c: StoreCount, extra: string): void {
  console.log(`      ${what}: ${acked} acknowledged of ${sent} sent; ${c.rows} rows: lost ${c.lost.length}, duplicated ${c.duplicated}, mismatched ${c.mismatched}, unexplained ${c.unexplained}; ${extra}`);
}

function assertExact(c: StoreCount, acked: number, cutOffStored: number): void {
  assert.deepEqual(c.lost.slice(0, 10), [], `${c.lost.length} acknowledged uplinks lost`);
  assert.equal(c.duplicated, 0, 'uplinks stored twice');
  assert.equal(c.mismatched, 0, 'rows holding another uplink than their timestamp says');
  assert.equal(c.unexplained, 0, 'rows of uplinks never acknowledged and not cut off by a kill');
  assert.equal(c.rows, acked + cutOffStored, 'stored rows = acknowledged + stored cut-off uplinks');
}

describe('cluster: three FLUX nodes on Redis, NATS JetStream and PostgreSQL', function () {
  this.timeout(150_000);
  let c: TestCluster | undefined;
  let secrets: Record<string, string> = {};
  const ids = Array.from({ length: DEVICES }, (_, i) => `e${i}`);
  const name = uniqueName('three');

  before(async function () {
    this.timeout(120_000);
    c = await startCluster(3, { FLUX_NATS_URL: NATS_URL, FLUX_NATS_NAME: name, FLUX_LOG_LEASE: '2s', FLUX_LOG_PARTITIONS: String(PARTITIONS) }, 'cluster_e2e');
    const a = c.nodes[0]!;
    assert.equal((await a.api('POST', '/api/products', { key: 'meter', name: 'Meter', metadata: { properties: [{ id: 'n', type: 'int' }] } })).status, 201);
    for (const id of ids) {
      const d = await a.api('POST', '/api/devices', { id, product_id: 'meter' });
      assert.equal(d.status, 201, JSON.stringify(d.body));
      secrets[id] = d.body.secret;
    }
    await until(async () => {
      const held = await Promise.all(c!.nodes.map(partitionsOf));
      return held.every((p) => p.length > 0) && new Set(held.flat()).size === PARTITIONS;
    }, 'the three nodes share the partitions', 30_000, 200);
  });
  after(async () => {
    const dirs = c?.nodes.map((n) => n.dataDir) ?? [];
    await c?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    await dropCluster(name);
    secrets = {};
  });

  it('20,000 QoS 1 uplinks, one node killed with SIGKILL mid-way: every acknowledged uplink stored once (0 lost, 0 duplicated)', async () => {
    const TOTAL = 20_000;
    const BASE_TS = 1_750_000_000_000;
    const [a, b, dead] = c!.nodes as [TestNode, TestNode, TestNode];
    const t0 = Date.now();
    const fleet = startFleet({ ids, secrets, ports: c!.nodes.map((n) => n.mqtt), product: 'meter', baseTs: BASE_TS, total: TOTAL, window: WINDOW });
    const cutOff = new Set<string>();
    let moved: number | undefined;
    try {
      await until(() => fleet.devices.every((d) => d.port), 'every device connected', 20_000);
      assert.equal(new Set(fleet.devices.map((d) => d.port)).size, 3, 'devices on all three nodes');
      await until(() => fleet.acked() >= TOTAL / 2, 'half the uplinks acknowledged', 60_000);
      const onDead = fleet.devices.filter((d) => d.port === dead.mqtt);
      moved = onDead.length;
      assert.equal(moved, DEVICES / 3, 'a third of the devices on the node to kill');
      // a superset: what was in flight on it just before the kill
      for (const k of fleet.inFlightOn(dead.mqtt)) cutOff.add(k);
      dead.child.kill('SIGKILL');
      await new Promise((r) => dead.child.once('exit', r));
      for (const k of fleet.inFlightOn(dead.mqtt)) cutOff.add(k);
      await until(() => onDead.every((d) => d.client.connected && d.port !== dead.mqtt), "the dead node's devices reconnected to the others", 20_000);
      await until(async () => new Set((await Promise.all([a, b].map(partitionsOf))).flat()).size === PARTITIONS, 'the survivors hold every partition', 20_000, 200);
      await fleet.finish(60_000);
    } finally {
      await fleet.close();
    }
    const loadS = (Date.now() - t0) / 1000;
    const stored = await countStored(c!.db.url, fleet, BASE_TS, cutOff);
    // every cut-off publish was sent again and acknowledged, so none is stored without an acknowledgement
    report('SIGKILL', fleet.acked(), fleet.sent(), stored, `${moved} devices moved, ${cutOff.size} PUBACKs cut by the kill; load ${loadS.toFixed(1)} s`);
    assert.equal(fleet.acked(), TOTAL, 'every uplink acknowledged in the end (mqtt.js sends a cut-off publish again)');
    assertExact(stored, fleet.acked(), 0);
  });

  it('Redis killed mid-load and restarted empty: connected devices go on, new connections are refused with "server unavailable", nothing acknowledged is lost', async () => {
    const TOTAL = 6000;
    const BASE_TS = 1_760_000_000_000;
    const live = c!.nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
    assert.equal(live.length, 2);
    const [a, b] = live as [TestNode, TestNode];
    const fleet = startFleet({ ids, secrets, ports: live.map((n) => n.mqtt), product: 'meter', baseTs: BASE_TS, total: TOTAL, window: WINDOW });
    let ackedWhileDown: number | undefined;
    try {
      await until(() => fleet.devices.every((d) => d.port), 'every device connected', 20_000);
      await until(() => fleet.acked() >= TOTAL / 3, 'a third acknowledged', 60_000);
      await c!.redis.kill();
      const atKill = fleet.acked();
      const refused = await connect(a, { clientId: 'late', username: 'platform', password: TEST_TOKEN }).then(
        (cl) => (cl.end(true), undefined),
        (e: Error & { code?: number }) => e,
      );
      assert.ok(refused, 'a new connection is refused while Redis is down');
      assert.equal(refused.code, 3, `CONNACK "server unavailable": ${refused.message}`);
      await until(() => fleet.acked() >= atKill + 500, 'uplinks acknowledged while Redis is down', 20_000);
      ackedWhileDown = fleet.acked() - atKill;
      await c!.redis.restart();
      await fleet.finish(60_000);
    } finally {
      await fleet.close();
    }
    const stored = await countStored(c!.db.url, fleet, BASE_TS, new Set());
    const refusals = await metric(a, 'flux_mqtt_refused_total', 'cluster_unavailable');
    report('Redis restart', fleet.acked(), fleet.sent(), stored, `${ackedWhileDown} acknowledged while Redis was down; node A refused ${refusals} connection(s) as cluster_unavailable`);
    assert.ok(refusals >= 1, 'the refusal is counted by reason');
    assert.equal(fleet.acked(), TOTAL);
    assertExact(stored, fleet.acked(), 0);
    for (const n of [a, b]) {
      await until(async () => {
        const r = await n.api('GET', '/api/cluster');
        return r.status === 200 && r.body.nodes.filter((x: { status: string }) => x.status === 'up').length === 2;
      }, `${n.id} lists both nodes again`, 15_000, 200);
    }
  });
});
