/**
 * Cluster mode (docs/cluster.md): end-to-end throughput with 1, 2 and 3 FLUX nodes, and a command
 * sent through one node to a device connected to another.
 *
 * One cluster: a redis-server of the bench's own, the NATS on :4222 (a stream name unique to the
 * run, deleted after), a PostgreSQL database `cluster_e2e_bench_*` (dropped after). node-a starts
 * alone; node-b and node-c join, then leave again (1, 2, 3, 3, 2, 1 nodes): each node count is
 * measured twice, once on the way up and once on the way down, so that a machine getting busier or
 * quieter during the run does not favour one count. Each measurement sends `COUNT` QoS 1 uplinks
 * from 30 devices spread round-robin over the nodes up (test/cluster/fleet.ts: mqtt.js in this
 * process, 16 in flight per device) and times them until every one is acknowledged and stored in
 * PostgreSQL. The same workload for every count.
 *
 * CPU per uplink is read from /proc for every process that takes part: the FLUX nodes, the generator
 * (this process), nats-server, the PostgreSQL backends of the bench's database and Redis (`INFO cpu`).
 * They all share the machine's cores, so their sum is what bounds the rate on one machine.
 */
import os from 'node:os';
import fs from 'node:fs';
import type { Bench, BenchRow } from './types.ts';
import { startCluster, connect, until, type TestCluster } from '../test/cluster/cluster.ts';
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
function cpuSeconds(pid: number | undefined, file = `/proc/${pid}/stat`): number {
  const stat = fs.readFileSync(file, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

/** CPU seconds of a process' main thread (the JavaScript event loop; the rest is V8's GC and compiler helpers, libuv) */
function mainThreadSeconds(pid: number | undefined): number {
  return cpuSeconds(pid, `/proc/${pid}/task/${pid}/stat`);
}

/** context switches of a process' main thread (each one a wake-up of its event loop or a preemption) */
function switches(pid: number | undefined): number {
  const s = fs.readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
  return Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(s)?.[1]) + Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(s)?.[1]);
}

async function redisCpuSeconds(c: TestCluster): Promise<number> {
  const info = await c.redis.cli('INFO', 'cpu');
  const v = (k: string) => Number(new RegExp(`^${k}:(\\S+)`, 'm').exec(info)?.[1] ?? NaN);
  return v('used_cpu_user') + v('used_cpu_sys');
}

/** pids whose command line passes `test` (other users' processes included: /proc/<pid>/stat is readable) */
function pidsOf(test: (cmdline: string) => boolean): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (test(fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' '))) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** CPU seconds of several processes by pid (a process gone meanwhile counts 0) */
function cpuOf(pids: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of pids) {
    try {
      m.set(p, cpuSeconds(p));
    } catch {
      // exited
    }
  }
  return m;
}

interface Row {
  rate: number;
  ackRate: number;
  seconds: number;
  latencies: number[];
  /** µs of CPU per uplink: each FLUX node, and the other parts */
  nodesUs: number[];
  /** of nodesUs, the main threads' (summed over the nodes) */
  mainUs: number;
  /** the nodes' main-thread context switches per uplink (summed) */
  switches: number;
  generatorUs: number;
  natsUs: number;
  pgUs: number;
  redisUs: number;
  leasesLost?: number;
}

/** COUNT uplinks over the nodes up: acknowledged and stored per second, and who spent what CPU */
async function throughput(c: TestCluster, sql: RawSql, secrets: Record<string, string>, count: number, baseTs: number): Promise<Row> {
  const ids = Object.keys(secrets).filter((id) => id.startsWith('b'));
  const dbName = new URL(c.db.url).pathname.slice(1);
  const natsPids = pidsOf((cmd) => /(^|\/)nats-server\b/.test(cmd));
  const pgPids = () => pidsOf((cmd) => cmd.startsWith('postgres: ') && cmd.includes(` ${dbName} `));
  const node0 = c.nodes.map((n) => cpuSeconds(n.child.pid));
  const main0 = c.nodes.reduce((t, n) => t + mainThreadSeconds(n.child.pid), 0);
  const sw0 = c.nodes.reduce((t, n) => t + switches(n.child.pid), 0);
  const nats0 = cpuOf(natsPids);
  const pg0 = cpuOf(pgPids());
  const redis0 = await redisCpuSeconds(c);
  const gen0 = process.cpuUsage();
  const latencies: number[] = [];
  const t0 = performance.now();
  const fleet = startFleet({ ids, secrets, ports: c.nodes.map((n) => n.mqtt), product: 'meter', baseTs, total: count, window: 16, latencies });
  await fleet.finish(120_000);
  const acked = performance.now();
  await until(async () => (await storedSince(sql, baseTs)) >= count, `${count} stored`, 120_000, 100);
  const seconds = (performance.now() - t0) / 1000;
  const gen = process.cpuUsage(gen0);
  const delta = (before: Map<number, number>, after: Map<number, number>) => [...after].reduce((t, [p, v]) => t + v - (before.get(p) ?? 0), 0);
  const us = (cpuS: number) => (cpuS / count) * 1e6;
  return {
    rate: count / seconds,
    ackRate: count / ((acked - t0) / 1000),
    seconds,
    latencies,
    nodesUs: c.nodes.map((n, i) => us(cpuSeconds(n.child.pid) - node0[i]!)),
    mainUs: us(c.nodes.reduce((t, n) => t + mainThreadSeconds(n.child.pid), 0) - main0),
    switches: (c.nodes.reduce((t, n) => t + switches(n.child.pid), 0) - sw0) / count,
    generatorUs: (gen.user + gen.system) / count,
    natsUs: natsPids.length ? us(delta(nats0, cpuOf(natsPids))) : NaN,
    pgUs: us(delta(pg0, cpuOf(pgPids()))),
    redisUs: us((await redisCpuSeconds(c)) - redis0),
  };
}

const bench: Bench = async ({ quick }) => {
  const COUNT = quick ? 5000 : 20_000;
  const COMMANDS = quick ? 100 : 300;
  const rows: BenchRow[] = [];
  const name = uniqueName('bench');
  // FLUX_LOG_LEASE at its default (6 s): with 2 s, a node whose event loop stalled under the load of
  // this machine lost leases mid-row, and the partitions' redelivered uplinks were processed again
  const c = await startCluster(1, { FLUX_NATS_URL: NATS_URL, FLUX_NATS_NAME: name, FLUX_LOG_PARTITIONS: String(PARTITIONS) }, 'cluster_e2e_bench');
  const sql = await rawSql(c.db.url);
  const dirs = new Set<string>();
  const add = c.add;
  c.add = async (id, extra) => {
    const n = await add(id, extra);
    dirs.add(n.dataDir);
    return n;
  };
  for (const n of c.nodes) dirs.add(n.dataDir);
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
        // balanced: every node holds its share (a node with more releases the extra ones at its next renewal)
        return held.every((p) => p.length >= Math.floor(PARTITIONS / c.nodes.length)) && new Set(held.flat()).size === PARTITIONS;
      }, 'the partitions spread', 60_000, 200);
    /** partition leases lost (a node too slow to renew): each one's in-flight uplinks are processed again */
    const leasesLost = () => c.nodes.reduce((t, n) => t + (n.output().match(/lost a partition lease/g)?.length ?? 0), 0);

    const measured = new Map<number, Row[]>();
    let baseTs = 1_800_000_000_000;
    const measure = async () => {
      await partitionsSpread();
      await throughput(c, sql, secrets, Math.min(2000, COUNT), (baseTs += 1e9)); // warm-up
      const lost0 = leasesLost();
      const r = await throughput(c, sql, secrets, COUNT, (baseTs += 1e9));
      r.leasesLost = leasesLost() - lost0;
      measured.set(c.nodes.length, [...(measured.get(c.nodes.length) ?? []), r]);
      process.stderr.write(`bench cluster: ${c.nodes.length} node(s): ${Math.round(r.rate)} uplinks/s, ${Math.round(r.nodesUs.reduce((x, y) => x + y, 0))} µs of FLUX CPU per uplink, ${r.leasesLost} leases lost; ${load()}\n`);
    };
    // up: 1, 2, 3 nodes; down: 3, 2, 1 (node-c, then node-b stop normally, releasing their partitions)
    await measure();
    for (const id of ['node-b', 'node-c']) {
      await c.add(id);
      await measure();
    }
    await measure();
    for (const id of ['node-c', 'node-b']) {
      const i = c.nodes.findIndex((n) => n.id === id);
      const [gone] = c.nodes.splice(i, 1);
      await gone!.stop();
      await measure();
    }
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    const one = mean(measured.get(1)!.map((r) => r.rate));
    for (const n of [1, 2, 3]) {
      const rs = measured.get(n)!;
      const rate = mean(rs.map((r) => r.rate));
      const lat = rs.flatMap((r) => r.latencies);
      const nodes = mean(rs.map((r) => r.nodesUs.reduce((x, y) => x + y, 0)));
      const main = mean(rs.map((r) => r.mainUs));
      const sw = mean(rs.map((r) => r.switches));
      const gen = mean(rs.map((r) => r.generatorUs));
      const nats = mean(rs.map((r) => r.natsUs));
      const pg = mean(rs.map((r) => r.pgUs));
      const redis = mean(rs.map((r) => r.redisUs));
      const label = `${n} node${n > 1 ? 's' : ''}`;
      rows.push({
        group: 'cluster',
        name: `${label}: ${COUNT} QoS 1 uplinks from ${DEVICES} devices, acknowledged and stored (PostgreSQL), mean of 2`,
        value: rate,
        unit: 'uplinks/s',
        note: `${rs.map((r) => Math.round(r.rate)).join(' and ')}/s (up, down); PUBACK p50 ${pct(lat, 0.5).toFixed(0)} ms, p99 ${pct(lat, 0.99).toFixed(0)} ms; partition leases lost ${rs.map((r) => r.leasesLost).join(' and ')}; ${load()}`,
      });
      rows.push({
        group: 'cluster',
        name: `${label}: CPU per uplink, all processes`,
        value: nodes + gen + nats + pg + redis,
        unit: 'µs',
        note: `FLUX nodes ${Math.round(nodes)} (${rs[0]!.nodesUs.map((u) => Math.round(u)).join(' + ')}; main threads ${Math.round(main)}, the rest V8's GC and compiler helpers; ${sw.toFixed(2)} main-thread context switches per uplink), generator ${Math.round(gen)}, nats-server ${Math.round(nats)}, PostgreSQL ${Math.round(pg)}, Redis ${redis.toFixed(1)}`,
      });
      rows.push({ group: 'cluster', name: `${label}: throughput as a ratio to 1 node`, value: rate / one, unit: '×', target: '>= 1', met: n === 1 ? undefined : rate / one >= 1 });
    }

    // a command through node A's API to a device connected to node C
    await c.add('node-c');
    await partitionsSpread();
    const nodeA = c.nodes[0]!;
    const nodeC = c.nodes.find((n) => n.id === 'node-c')!;
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
    await c.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
    await dropCluster(name);
  }
  return rows;
};

export default bench;
