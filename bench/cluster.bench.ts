/**
 * Cluster mode (docs/cluster.md): end-to-end throughput with 1, 2 and 3 FLUX nodes, and a command
 * sent through one node to a device connected to another.
 *
 * One cluster: a redis-server of the bench's own, the NATS on :4222 (a stream name unique to the
 * run, deleted after), a PostgreSQL database `cluster_e2e_bench_*` (dropped after). node-a starts
 * alone; node-b and node-c join between the rows. Each row sends `COUNT` QoS 1 uplinks from 30
 * devices spread round-robin over the nodes up (test/cluster/fleet.ts: mqtt.js in this process,
 * 16 in flight per device) and times them until every one is acknowledged and stored in PostgreSQL.
 * The generator shares the machine with the nodes, Redis, NATS and PostgreSQL.
 */
import os from 'node:os';
import fs from 'node:fs';
import type { Bench, BenchRow } from './types.ts';
import { startCluster, connect, until, type TestCluster, type TestNode } from '../test/cluster/cluster.ts';
import { startFleet } from '../test/cluster/fleet.ts';
import { rawSql, type RawSql } from '../test/helpers/databases.ts';
import { dropCluster, NATS_URL, uniqueName } from '../test/cluster-log/nodes.ts';

const DEVICES = 30;
const PARTITIONS = 12;
const load = () => `load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`;
const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))] ?? NaN;

async function storedSince(sql: RawSql, baseTs: number): Promise<number> {
  const [r] = await sql.query<{ n: string }>("SELECT count(*) AS n FROM ts_points p JOIN ts_series s ON s.id = p.series_id WHERE s.metric = 'n' AND p.ts >= ?", [baseTs]);
  return Number(r?.n ?? 0);
}

/** CPU seconds (user + system) of a process, from /proc (Linux) */
function cpuSeconds(pid: number | undefined): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

async function redisCpuSeconds(c: TestCluster): Promise<number> {
  const info = await c.redis.cli('INFO', 'cpu');
  const v = (k: string) => Number(new RegExp(`^${k}:(\\S+)`, 'm').exec(info)?.[1] ?? NaN);
  return v('used_cpu_user') + v('used_cpu_sys');
}

/** COUNT uplinks over the nodes up: acknowledged and stored per second */
async function throughput(c: TestCluster, sql: RawSql, secrets: Record<string, string>, count: number, baseTs: number): Promise<{ rate: number; ackRate: number; seconds: number; nodeUsPerUplink: number; redisUsPerUplink: number }> {
  const ids = Object.keys(secrets).filter((id) => id.startsWith('b'));
  const cpu0 = c.nodes.reduce((t, n) => t + cpuSeconds(n.child.pid), 0);
  const redis0 = await redisCpuSeconds(c);
  const t0 = performance.now();
  const fleet = startFleet({ ids, secrets, ports: c.nodes.map((n) => n.mqtt), product: 'meter', baseTs, total: count, window: 16 });
  await fleet.finish(120_000);
  const acked = performance.now();
  await until(async () => (await storedSince(sql, baseTs)) >= count, `${count} stored`, 120_000, 100);
  const seconds = (performance.now() - t0) / 1000;
  const nodesCpu = c.nodes.reduce((t, n) => t + cpuSeconds(n.child.pid), 0) - cpu0;
  const redisCpu = (await redisCpuSeconds(c)) - redis0;
  return { rate: count / seconds, ackRate: count / ((acked - t0) / 1000), seconds, nodeUsPerUplink: (nodesCpu / count) * 1e6, redisUsPerUplink: (redisCpu / count) * 1e6 };
}

const bench: Bench = async ({ quick }) => {
  const COUNT = quick ? 5000 : 20_000;
  const COMMANDS = quick ? 100 : 300;
  const rows: BenchRow[] = [];
  const name = uniqueName('bench');
  const c = await startCluster(1, { FLUX_NATS_URL: NATS_URL, FLUX_NATS_NAME: name, FLUX_LOG_LEASE: '2s', FLUX_LOG_PARTITIONS: String(PARTITIONS) }, 'cluster_e2e_bench');
  const sql = await rawSql(c.db.url);
  try {
    const a = c.nodes[0]!;
    if ((await a.api('POST', '/api/products', { key: 'meter', name: 'Meter', metadata: { properties: [{ id: 'n', type: 'int' }] } })).status !== 201) throw new Error('product');
    const secrets: Record<string, string> = {};
    for (const id of [...Array.from({ length: DEVICES }, (_, i) => `b${i}`), 'cmd']) {
      const d = await a.api('POST', '/api/devices', { id, product_id: 'meter' });
      if (d.status !== 201) throw new Error(`device ${id}: ${d.status}`);
      secrets[id] = d.body.secret;
    }
    const partitionsSpread = () =>
      until(async () => {
        const held = await Promise.all(c.nodes.map(async (n) => ((await n.api('GET', '/api/health')).body.components.uplink_log?.partitions ?? []) as number[]));
        return held.every((p) => p.length > 0) && new Set(held.flat()).size === PARTITIONS;
      }, 'the partitions spread', 30_000, 200);

    let one = NaN;
    for (const n of [1, 2, 3]) {
      if (n > 1) await c.add(`node-${'abc'[n - 1]}`);
      await partitionsSpread();
      await throughput(c, sql, secrets, Math.min(2000, COUNT), 1_700_000_000_000 + n * 1e9); // warm-up
      const r = await throughput(c, sql, secrets, COUNT, 1_800_000_000_000 + n * 1e9);
      if (n === 1) one = r.rate;
      const ratio = r.rate / one;
      rows.push({
        group: 'cluster',
        name: `${n} node${n > 1 ? 's' : ''}: ${COUNT} QoS 1 uplinks from ${DEVICES} devices, acknowledged and stored (PostgreSQL)`,
        value: r.rate,
        unit: 'uplinks/s',
        note: `${r.seconds.toFixed(1)} s, acknowledged at ${Math.round(r.ackRate)}/s; CPU per uplink: FLUX nodes ${Math.round(r.nodeUsPerUplink)} µs (sum), Redis ${r.redisUsPerUplink.toFixed(1)} µs; ${load()}`,
      });
      rows.push({ group: 'cluster', name: `${n} node${n > 1 ? 's' : ''}: throughput as a ratio to 1 node`, value: ratio, unit: '×', target: '>= 1', met: n === 1 ? undefined : ratio >= 1 });
    }

    // a command through node A's API to a device connected to node C
    const [nodeA, , nodeC] = c.nodes as [TestNode, TestNode, TestNode];
    const dev = await connect(nodeC, { clientId: 'cmd', username: 'cmd', password: secrets.cmd });
    await dev.subscribeAsync('/meter/cmd/command', { qos: 1 });
    await until(async () => (await nodeA.api('GET', '/api/devices/cmd')).body.status === 'online', 'cmd online', 10_000);
    const lat: number[] = [];
    let waiting: ((t: number) => void) | undefined;
    dev.on('message', () => waiting?.(performance.now()));
    let failed = 0;
    for (let i = 0; i < COMMANDS; i++) {
      const got = new Promise<number>((resolve) => (waiting = resolve));
      const t0 = performance.now();
      const r = await nodeA.api('POST', '/api/devices/cmd/commands', { command: `c${i}` });
      if (r.status !== 200) {
        failed++;
        continue;
      }
      lat.push((await got) - t0);
    }
    await dev.endAsync(true);
    const p99 = pct(lat, 0.99);
    rows.push({
      group: 'cluster',
      name: 'command through node A to a device on node C: delivered, p99',
      value: p99,
      unit: 'ms',
      target: '< 100 ms',
      met: p99 < 100 && failed === 0,
      note: `${lat.length} of ${COMMANDS} delivered, p50 ${pct(lat, 0.5).toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms (API request → MQTT message at the device); ${load()}`,
    });
  } finally {
    await sql.close();
    const dirs = c.nodes.map((n) => n.dataDir);
    await c.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    await dropCluster(name);
  }
  return rows;
};

export default bench;
