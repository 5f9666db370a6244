/**
 * The Modbus master in a cluster (runtime/cluster/modbus-leases.ts): two real FLUX nodes on a Redis
 * and a PostgreSQL database of the test's own, two Modbus TCP slaves (test/modbus/slave.ts) with
 * one device each. Each endpoint is polled by one node (one connection per slave, each poll stored
 * once), the two endpoints spread over the nodes, and the endpoint of a node killed with SIGKILL
 * is polled by the survivor within the lease.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startCluster, until, type TestCluster, type TestNode } from './cluster.ts';
import { startSlave, type TestSlave } from '../modbus/slave.ts';
import { rawSql } from '../helpers/databases.ts';

const INTERVAL_MS = 200;
const SYNC_MS = 300;
/** the lease of an endpoint: 3 syncs, at least 3 s (runtime/modbus/master.ts) */
const LEASE_MS = Math.max(3 * SYNC_MS, 3000);

const GAUGE = { interval_ms: INTERVAL_MS, timeout_ms: 300, offline_after: 2, registers: [{ property: 'v', function: 3, address: 0, type: 'uint16' }] };

/** devices each node polls now, with their poll counts, from GET /api/modbus */
async function pollsOf(n: TestNode): Promise<Map<string, number>> {
  const r = await n.api('GET', '/api/modbus');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const out = new Map<string, number>();
  for (const e of r.body.endpoints) for (const u of e.units) if (u.polls > 0) out.set(u.device_id, u.polls);
  return out;
}

describe('cluster: the Modbus master polls each endpoint from one node', function () {
  this.timeout(120_000);
  let c: TestCluster | undefined;
  const slaves: TestSlave[] = [];
  after(async () => {
    const dirs = c?.nodes.map((n) => n.dataDir) ?? [];
    await c?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    for (const s of slaves) await s.close();
  });

  it('stores each poll once, spreads the endpoints, and moves a dead node\'s endpoint to the survivor', async () => {
    for (let i = 0; i < 2; i++) slaves.push(await startSlave('tcp'));
    c = await startCluster(2, { FLUX_MODBUS_SYNC_MS: String(SYNC_MS) }, 'cluster_e2e');
    const [a, b] = c.nodes as [TestNode, TestNode];
    const p = await a.api('POST', '/api/products', { key: 'gauge', name: 'Gauge', metadata: { properties: [{ id: 'v', type: 'int' }] }, transport: { modbus: GAUGE } });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    for (const [i, s] of slaves.entries()) {
      const d = await a.api('POST', '/api/devices', { id: `g${i}`, product_id: 'gauge', transport: { modbus: { host: '127.0.0.1', port: s.port, unit: 1 } } });
      assert.equal(d.status, 201, JSON.stringify(d.body));
    }
    const holders = await until(async () => {
      const [pa, pb] = await Promise.all([pollsOf(a), pollsOf(b)]);
      return pa.size + pb.size === 2 ? { g0: pa.has('g0') ? a : b, g1: pa.has('g1') ? a : b } : undefined;
    }, 'both devices polled', 20_000, 200);
    assert.notEqual(holders.g0, holders.g1, 'the two endpoints are polled by different nodes');
    await new Promise((r) => setTimeout(r, 3000));
    const [pa, pb] = await Promise.all([pollsOf(a), pollsOf(b)]);
    for (const id of ['g0', 'g1']) assert.ok(!(pa.has(id) && pb.has(id)), `${id} polled by both nodes`);
    assert.deepEqual(slaves.map((s) => s.connections), [1, 1], 'one master connection per slave');

    // the holder of g0's endpoint dies; the survivor polls it within the lease and a sync
    const dead = holders.g0;
    const survivor = dead === a ? b : a;
    dead.child.kill('SIGKILL');
    const killedAt = Date.now();
    await new Promise((r) => dead.child.once('exit', r));
    await until(async () => (await pollsOf(survivor)).has('g0'), 'the survivor polls g0', LEASE_MS + 10_000, 100);
    const movedMs = Date.now() - killedAt;
    await new Promise((r) => setTimeout(r, 2000));
    for (const s of slaves) await s.stop(); // no more reads: the counts below are final

    const sql = await rawSql(c.db.url);
    const rowsOf = (id: string) => sql.query<{ ts: string; v: number }>("SELECT p.ts AS ts, p.num AS v FROM ts_points p JOIN ts_series s ON s.id = p.series_id WHERE s.metric = 'v' AND s.device_id = ? ORDER BY p.ts", [id]);
    try {
      for (const [i, id] of ['g0', 'g1'].entries()) {
        const reads = slaves[i]!.counts.get(1) ?? 0;
        let rows = await rowsOf(id);
        await until(async () => ((rows = await rowsOf(id)), rows.length >= reads - 2), `${id}'s reads stored`, 15_000, 250).catch(() => undefined);
        const ts = rows.map((r) => Number(r.ts));
        const gaps = ts.slice(1).map((t, j) => t - ts[j]!);
        const close = gaps.filter((g) => g < INTERVAL_MS / 2).length;
        const longest = Math.max(...gaps);
        console.log(`      ${id}: ${reads} reads by the slave, ${rows.length} rows, ${close} rows closer than ${INTERVAL_MS / 2} ms to the previous one, longest gap ${longest} ms; ${slaves[i]!.connections} connections${id === 'g0' ? `; polled by the survivor ${movedMs} ms after the kill` : ''}`);
        // one master per slave is what the connections say; rows closer than half an interval are
        // printed, not asserted: a late tick on a loaded machine is followed by one on schedule
        // a read answered by a killed node may be lost with it (its poll was not yet in the log: not acknowledged to anyone)
        assert.ok(rows.length <= reads && rows.length >= reads - 3, `${rows.length} rows for ${reads} reads`);
        assert.equal(slaves[i]!.connections, id === 'g0' ? 2 : 1, 'connections: the holder, then the survivor');
      }
    } finally {
      await sql.close();
    }
    assert.ok(movedMs < LEASE_MS + 4 * SYNC_MS + 3000, `moved after ${movedMs} ms`);
  });
});
