/**
 * GraphQL figures (docs/graphql.md):
 *  1. a query of 100 devices with their latest values: backend calls (counted on the real backends)
 *     and p99 latency over HTTP, in-process FLUX on SQLite, from a client process of its own (and,
 *     for comparison with earlier runs, from a client in the FLUX process);
 *  2. 1,000 graphql-ws subscribers on telemetry, one device each, while 1,000 MQTT devices publish
 *     10 msg/s each (10,000 deliveries/s): receive→client p99, and FLUX's CPU, event-loop delay and
 *     ingest with and without the subscribers. FLUX runs as its own process; the MQTT load comes
 *     from two bench/lib/load-worker.ts processes; the subscribers live in this process. All three
 *     share the machine's cores, so the CPU of each is reported (a row of its own): what the clients
 *     and generators take is not FLUX's, but FLUX waits for a core while they run.
 *  3. the fan-out's own CPU per delivery, in-process: live-feed events published to 1,000 graphql-ws
 *     subscribers (one group each, then all in one group), CPU time of the synchronous publish (the
 *     groups' execution, serialisation and every socket write happen inside it). Less sensitive to
 *     a busy machine than the latencies above. And, paced at 10,000 deliveries/s, the latency from
 *     the feed's publish to the client (the pipeline's own latency left out; the clients share the
 *     process, so their work is in it).
 */
import { createClient, type Client } from 'graphql-ws';
import os from 'node:os';
import { spawn } from 'node:child_process';
import WebSocket from 'ws';
import type { Bench, BenchRow } from './types.ts';
import { startLoad } from './lib/load.ts';
import { childPids, threadCpuSeconds, histogramQuantile, metric, procStats, provision, scrape, startFlux, tempDir } from './lib/flux.ts';
import { createFlux } from '../runtime/app/index.ts';
import { loadSettings } from '../settings.ts';
import { createLogger } from '../runtime/log/index.ts';

const GROUP = 'graphql';
const TOKEN = 'bench-token-0123456789abcdef';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const p = (xs: number[], q: number) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : NaN;
};

/**
 * `count` graphql-ws clients, each subscribed to telemetry of `deviceOf(i)`, opened 50 at a time
 * (each wave connected before the next), pushed to `clients` as they are made (the caller disposes
 * them, also after a failure). A thousand handshakes at once on a busy machine outlast graphql-ws's
 * 3 s connection_init timeout (4408); a client that meets it anyway connects again (the measuring
 * starts once all are subscribed).
 */
async function openSubscribers(clients: Client[], url: string, token: string, count: number, deviceOf: (i: number) => string, onTs: (ts: number) => void): Promise<void> {
  for (let i = 0; i < count; i += 50) {
    const wave: Promise<void>[] = [];
    for (let j = i; j < Math.min(count, i + 50); j++) {
      wave.push(
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`bench client ${j} did not connect within 60 s`)), 60_000);
          const connected = () => (clearTimeout(timer), resolve());
          const c = createClient({ url, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, lazy: false, retryAttempts: 20, shouldRetry: () => true, retryWait: async () => void (await sleep(200)), on: { connected }, onNonLazyError: () => undefined });
          clients.push(c);
          c.subscribe({ query: `subscription { telemetry(device_id: "${deviceOf(j)}") { ts values } }` }, { next: (v) => onTs((v.data as { telemetry: { ts: number } }).telemetry.ts), error: () => undefined, complete: () => undefined });
        }),
      );
    }
    await Promise.all(wave);
  }
}

async function queryLatest(quick: boolean): Promise<BenchRow[]> {
  const settings = loadSettings({ FLUX_DATA_DIR: tempDir('flux-bench-gql-'), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TOKEN });
  const flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
  const ports = await flux.start();
  try {
    const { registry } = flux.ctx;
    const { storage } = flux.modules;
    const product = await registry.products.create({ key: 'bench', name: 'bench' });
    const points = [];
    for (let i = 0; i < 100; i++) {
      await registry.devices.create({ id: `dev_${i}`, product_id: product.id });
      for (const m of ['temp', 'hum', 'pressure', 'co2', 'battery']) for (let t = 0; t < 10; t++) points.push({ device: `dev_${i}`, product: product.id, metric: m, ts: 1_700_000_000_000 + t * 1000, value: i + t });
    }
    await storage.store.write(points);
    // Count every call into the backends the query could use.
    let calls = 0;
    const counted = <T extends object>(obj: T, names: string[]) => {
      for (const n of names) {
        const f = (obj as Record<string, (...a: unknown[]) => unknown>)[n]!;
        (obj as Record<string, unknown>)[n] = (...a: unknown[]) => (calls++, f.apply(obj, a));
      }
    };
    counted(registry.devices, ['list', 'find', 'get', 'byProducts']);
    counted(registry.products, ['list', 'find', 'get', 'findMany']);
    counted(storage.store, ['latest', 'latestMany', 'range']);
    const query = JSON.stringify({ query: '{ devices(limit: 100) { items { id status latest { metric ts value } } page { total } } }' });
    const url = `http://127.0.0.1:${ports.http}/api/graphql`;
    const run = async () => {
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` }, body: query });
      const body = (await res.json()) as { data?: { devices: { items: unknown[] } } };
      if (body.data?.devices.items.length !== 100) throw new Error(`unexpected answer: ${JSON.stringify(body).slice(0, 300)}`);
    };
    for (let i = 0; i < 30; i++) await run();
    calls = 0;
    await run();
    const perQuery = calls;
    const n = quick ? 200 : 1000;
    const lat: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await run();
      lat.push(performance.now() - t0);
    }
    // The same queries from a client process of its own, as an operator's client is: the in-process
    // client's HTTP and JSON work (a tenth of the samples in a profile) then runs beside FLUX's.
    const apart = await queriesFromOwnProcess(url, query, n);
    return [
      { group: GROUP, name: 'query of 100 devices with their latest values (5 metrics each): backend calls', value: perQuery, unit: 'calls', target: '<= 3', met: perQuery <= 3, note: 'devices.list + store.latestMany (one SQL query), counted on the real backends' },
      { group: GROUP, name: 'query of 100 devices with their latest values: latency over HTTP, SQLite, client in a process of its own', value: p(apart, 0.99), unit: 'ms p99', target: '< 20 ms', met: p(apart, 0.99) < 20, note: `p50 ${p(apart, 0.5).toFixed(1)} ms over ${apart.length} sequential queries (fetch in a child node process)` },
      { group: GROUP, name: 'the same, client in the FLUX process', value: p(lat, 0.99), unit: 'ms p99', note: `p50 ${p(lat, 0.5).toFixed(1)} ms over ${lat.length} sequential queries (the client's work shares FLUX's thread)` },
    ];
  } finally {
    await flux.stop();
  }
}

/** Latencies (ms) of `n` sequential POSTs of `body` to `url` from a child node process. */
async function queriesFromOwnProcess(url: string, body: string, n: number): Promise<number[]> {
  const src = `
    const { URL_, TOKEN_, BODY_, N_ } = process.env;
    const lat = [];
    for (let i = 0; i < Number(N_) + 30; i++) {
      const t0 = performance.now();
      const res = await fetch(URL_, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + TOKEN_ }, body: BODY_ });
      const out = await res.json();
      if (out.data?.devices.items.length !== 100) throw new Error('unexpected answer ' + JSON.stringify(out).slice(0, 300));
      if (i >= 30) lat.push(performance.now() - t0);
    }
    process.stdout.write(JSON.stringify(lat));`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', src], { env: { ...process.env, URL_: url, TOKEN_: TOKEN, BODY_: body, N_: String(n) }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`the query client exited with ${code}`);
  return JSON.parse(out) as number[];
}

interface Phase {
  stored: number;
  /** FLUX process and the processes it started (the GraphQL socket process), % of a core */
  cpu: number;
  /** of it, the processes FLUX started */
  childCpu: number;
  /** of it, FLUX's main thread (the pipeline's) */
  mainCpu: number;
  /** this process (the 1,000 graphql-ws clients), % of a core */
  clientsCpu: number;
  /** the MQTT load generators, % of a core */
  loadCpu: number;
  /** FLUX's event-loop delay p99 over the phase (prom-client resets it at each scrape), ms */
  lagP99: number;
  pipelineP99: number;
  delivered: number;
  clientP99: number;
  clientP50: number;
}

/** CPU seconds of each process FLUX started, by pid. */
function childCpu(pid: number): Map<number, number> {
  return new Map(childPids(pid).map((c) => [c, procStats(c).cpuSeconds]));
}

/** Row names say where the sockets were: FLUX_GRAPHQL_SOCKETS=process (the default) or inline. */
async function subscribers(quick: boolean, sockets: 'process' | 'inline'): Promise<BenchRow[]> {
  const count = 1000;
  const perDevice = 10;
  const seconds = quick ? 5 : 10;
  const dataDir = tempDir('flux-bench-gqlsub-');
  const devices = await provision(dataDir, { productKey: 'bench', count, metadata: { properties: [{ id: 't', type: 'float' }] } });
  const flux = await startFlux({ FLUX_LOG_LEVEL: 'warn', FLUX_GRAPHQL_SOCKETS: sockets }, { dataDir, timeoutMs: 60_000 });
  const payloadHex = Buffer.from('{"values":{"t":21.5}}').toString('hex');
  const load = await startLoad({ host: '127.0.0.1', port: flux.mqtt, devices, payloadHex, qos: 0, processes: 2 });
  const clients: Client[] = [];
  try {
    const phase = async (lat: number[] | undefined, delivered: () => number): Promise<Phase> => {
      const m0 = await scrape(flux);
      const c0 = procStats(flux.child.pid!);
      const k0 = childCpu(flux.child.pid!);
      const t0 = threadCpuSeconds(flux.child.pid!, flux.child.pid!);
      const d0 = delivered();
      const own0 = process.cpuUsage();
      const r = await load.run(count * perDevice, seconds);
      await sleep(500);
      const own1 = process.cpuUsage(own0);
      const m1 = await scrape(flux);
      const c1 = procStats(flux.child.pid!);
      const k1 = childCpu(flux.child.pid!);
      const t1 = threadCpuSeconds(flux.child.pid!, flux.child.pid!);
      let kids = 0;
      for (const [pid, cpu] of k1) kids += cpu - (k0.get(pid) ?? 0);
      const span = r.seconds + 0.5;
      return {
        childCpu: (kids / span) * 100,
        mainCpu: ((t1 - t0) / span) * 100,
        clientsCpu: ((own1.user + own1.system) / 1e6 / (r.seconds + 0.5)) * 100,
        loadCpu: r.cpuPercentOfOneCore,
        lagP99: metric(m1, 'flux_nodejs_eventloop_lag_p99_seconds') * 1000,
        stored: (metric(m1, 'flux_storage_points_written_total') - metric(m0, 'flux_storage_points_written_total')) / r.seconds,
        cpu: ((c1.cpuSeconds - c0.cpuSeconds + kids) / span) * 100,
        pipelineP99: histogramQuantile(m0, m1, 'flux_pipeline_latency_seconds', 0.99) * 1000,
        delivered: (delivered() - d0) / r.seconds,
        clientP99: lat ? p(lat, 0.99) : NaN,
        clientP50: lat ? p(lat, 0.5) : NaN,
      };
    };
    // warm-up (the first seconds of a fresh FLUX cost more: JIT, a new database), then the load without subscribers
    await load.run(count * perDevice, quick ? 5 : 10);
    await sleep(1000);
    const loadBefore = os.loadavg()[0]!.toFixed(1);
    const before = await phase(undefined, () => 0);
    // FLUX's RSS and its children's (the socket process), before the subscribers and with them
    const rssOf = () => [flux.child.pid!, ...childPids(flux.child.pid!)].reduce((sum, pid) => sum + procStats(pid).rss, 0) / 1048576;
    const rssBefore = rssOf();

    const lat: number[] = [];
    let received = 0;
    const url = `ws://127.0.0.1:${new URL(flux.url).port}/api/graphql`;
    await openSubscribers(clients, url, flux.token, count, (i) => devices[i]!.username, (ts) => {
      received++;
      if (lat.length < 2_000_000) lat.push(Date.now() - ts);
    });
    for (let i = 0; i < 200; i++) {
      const h = await flux.api('GET', '/api/health');
      if (h.body.components?.graphql?.subscriptions >= count) break;
      await sleep(100);
    }
    await load.run(count * perDevice, 2);
    lat.length = 0;
    const during = await phase(lat, () => received);
    const rssWith = rssOf();
    // and without them again: what differs between the two phases without them is the noise of the machine
    await Promise.all(clients.splice(0).map((c) => c.dispose()));
    for (let i = 0; i < 200; i++) {
      const h = await flux.api('GET', '/api/health');
      if (h.body.components?.graphql?.subscriptions === 0) break;
      await sleep(100);
    }
    const after = await phase(undefined, () => 0);
    const cpuCost = during.cpu - (before.cpu + after.cpu) / 2;
    return [
      {
        group: GROUP,
        name: `${count} subscribers on telemetry (one device each) at ${perDevice} msg/s each, sockets ${sockets}: receive→client latency`,
        value: during.clientP99,
        unit: 'ms p99',
        target: '< 100 ms',
        met: during.clientP99 < 100 && during.delivered >= count * perDevice * 0.95,
        note: `${Math.round(during.delivered)} deliveries/s, p50 ${during.clientP50.toFixed(1)} ms; latency from the uplink's receive time (the telemetry ts) to the client. Of it, receive→stored (the pipeline; a result is published once its batch is stored) p99 ${during.pipelineP99.toFixed(1)} ms; the rest is the fan-out, the socket and the clients' process`,
      },
      {
        group: GROUP,
        name: `${count} subscribers at ${count * perDevice} deliveries/s, sockets ${sockets}: FLUX CPU for GraphQL`,
        value: cpuCost,
        unit: '% of a core',
        note: `without → with → without subscribers: FLUX CPU ${before.cpu.toFixed(0)} → ${during.cpu.toFixed(0)} → ${after.cpu.toFixed(0)}% (with: the socket process ${during.childCpu.toFixed(0)}%), its main thread ${before.mainCpu.toFixed(0)} → ${during.mainCpu.toFixed(0)} → ${after.mainCpu.toFixed(0)}%; ingest stored ${Math.round(before.stored)} → ${Math.round(during.stored)} → ${Math.round(after.stored)} msg/s, pipeline p99 ${before.pipelineP99.toFixed(1)} → ${during.pipelineP99.toFixed(1)} → ${after.pipelineP99.toFixed(1)} ms (receive→stored), event-loop delay p99 ${before.lagP99.toFixed(1)} → ${during.lagP99.toFixed(1)} → ${after.lagP99.toFixed(1)} ms; RSS of FLUX and its children ${rssBefore.toFixed(0)} → ${rssWith.toFixed(0)} MB with the subscribers`,
      },
      {
        group: GROUP,
        name: `${count} subscribers at ${count * perDevice} deliveries/s, sockets ${sockets}: what else ran on the ${os.cpus().length} cores`,
        value: during.clientsCpu,
        unit: '% of a core',
        note: `the ${count} graphql-ws clients (this bench process); MQTT load generators ${before.loadCpu.toFixed(0)}% → ${during.loadCpu.toFixed(0)}%; FLUX + generators + clients ${(during.cpu + during.loadCpu + during.clientsCpu).toFixed(0)}% of ${os.cpus().length * 100}%; load average ${loadBefore} → ${os.loadavg()[0]!.toFixed(1)}`,
      },
    ];
  } finally {
    await Promise.all(clients.map((c) => c.dispose()));
    await load.close();
    await flux.stop();
  }
}

/**
 * CPU microseconds of `feed.publish` per delivery to 1,000 real graphql-ws subscribers, in-process
 * (sockets inline: the fan-out's own cost on this thread), and the paced publish→client latency
 * with the sockets on this thread or in their own process.
 */
async function fanoutCost(quick: boolean, sockets: 'inline' | 'process'): Promise<BenchRow[]> {
  const count = 1000;
  const settings = loadSettings({ FLUX_DATA_DIR: tempDir('flux-bench-gqlfan-'), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TOKEN });
  const flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false, graphql: { sockets } });
  const ports = await flux.start();
  const url = `ws://127.0.0.1:${ports.http}/api/graphql`;
  const rows: BenchRow[] = [];
  try {
    for (const shared of sockets === 'inline' ? [false, true] : [false]) {
      let received = 0;
      const lat: number[] = [];
      const clients: Client[] = [];
      await openSubscribers(clients, url, TOKEN, count, (i) => (shared ? 'dev_0' : `dev_${i}`), (ts) => {
        received++;
        if (lat.length < 1_000_000) lat.push(Date.now() - ts);
      }).catch(async (err: unknown) => {
        await Promise.all(clients.map((c) => c.dispose()));
        throw err;
      });
      const health = async () => ((await (await fetch(`http://127.0.0.1:${ports.http}/api/health`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { components: { graphql: { subscriptions: number; groups: number } } }).components.graphql;
      for (let i = 0; i < 300 && (await health()).subscriptions < count; i++) await sleep(100);
      const groups = (await health()).groups;
      // publish's CPU says nothing when the writes happen in another process: the paced row only
      const rounds = sockets === 'inline' ? (quick ? 10 : 40) : 0;
      let cpu = 0;
      let deliveries = 0;
      for (let r = 0; r < rounds; r++) {
        const before = received;
        // 1,000 deliveries a round either way: an event per subscriber, or 1 event to the group of 1,000
        const events = shared ? 1 : count;
        const c0 = process.cpuUsage();
        for (let i = 0; i < events; i++) flux.modules.feed.publish({ type: 'telemetry', device_id: shared ? 'dev_0' : `dev_${i}`, product_key: 'bench', ts: Date.now(), values: { t: 21.5, n: r }, msg_id: `m${r}_${i}` });
        const c1 = process.cpuUsage(c0);
        cpu += c1.user + c1.system;
        for (let w = 0; w < 600 && received - before < count; w++) await sleep(20);
        deliveries += received - before;
      }
      if (!shared) {
        // Paced: 10,000 deliveries/s (100 events every 10 ms, each to its own subscriber) for a few
        // seconds; latency from feed.publish (the event's ts) to the client's callback.
        lat.length = 0;
        const before = received;
        const seconds = quick ? 3 : 6;
        const t0 = Date.now();
        for (let tick = 0; tick < seconds * 100; tick++) {
          const ts = Date.now();
          for (let k = 0; k < 100; k++) {
            const i = (tick * 100 + k) % count;
            flux.modules.feed.publish({ type: 'telemetry', device_id: `dev_${i}`, product_key: 'bench', ts, values: { t: 21.5 }, msg_id: `p${tick}_${k}` });
          }
          const wait = t0 + (tick + 1) * 10 - Date.now();
          if (wait > 0) await sleep(wait);
        }
        for (let w = 0; w < 200 && received - before < seconds * 10_000; w++) await sleep(20);
        rows.push({
          group: GROUP,
          name: `publish→client latency, ${count} graphql-ws subscribers (a group each), 10,000 deliveries/s paced, in-process, sockets ${sockets}`,
          value: p(lat, 0.99),
          unit: 'ms p99',
          target: '< 100 ms',
          met: p(lat, 0.99) < 100 && received - before >= seconds * 10_000 * 0.99,
          note: `p50 ${p(lat, 0.5).toFixed(1)} ms, ${received - before} of ${seconds * 10_000} delivered; from feed.publish to the graphql-ws client's next(): server and clients share this process's thread, so the clients' own work is in it`,
        });
      }
      if (rounds) rows.push({
        group: GROUP,
        name: `fan-out CPU per delivery, ${count} graphql-ws subscribers, ${shared ? 'one group (same document and device)' : 'one group each (a device each)'}`,
        value: cpu / deliveries,
        unit: 'µs CPU',
        note: `${deliveries} deliveries in ${rounds} rounds, ${groups} groups; CPU of feed.publish (execution, serialisation, socket writes): ${(cpu / deliveries).toFixed(1)}% of a core at 10,000 deliveries/s`,
      });
      await Promise.all(clients.map((c) => c.dispose()));
      for (let i = 0; i < 100 && (await health()).subscriptions > 0; i++) await sleep(100);
    }
  } finally {
    await flux.stop();
  }
  return rows;
}

// BENCH_GRAPHQL_PARTS=query,fanout,subscribers (default: all) runs only the parts named; the subscribers
// run with the sockets in their own process, then (not with --quick) inline, for the comparison.
const parts = (process.env.BENCH_GRAPHQL_PARTS ?? 'query,fanout,subscribers').split(',');
const bench: Bench = async ({ quick }) => [
  ...(parts.includes('query') ? await queryLatest(quick) : []),
  ...(parts.includes('fanout') ? await fanoutCost(quick, 'inline') : []),
  ...(parts.includes('fanout') ? await fanoutCost(quick, 'process') : []),
  ...(parts.includes('subscribers') ? await subscribers(quick, 'process') : []),
  ...(parts.includes('subscribers') && !quick ? await subscribers(quick, 'inline') : []),
];
export default bench;
