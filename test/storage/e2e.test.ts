/**
 * End to end on the real `flux` process (SQLite store): telemetry written through a deployed flow
 * (`http in` → function building a StandardMessage + msg.device → `flux store` → `http response`)
 * is readable through the REST API, raw and aggregated, and the aggregates match an independent
 * computation; the CSV report, `flux query`, thing-model checks and 400s on bad queries.
 */
import assert from 'node:assert/strict';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { referenceAggregate, assertAggEqual } from './store.contract.ts';
import type { Point } from '../../runtime/storage/index.ts';

const T0 = Date.UTC(2026, 10, 3, 10, 0, 0);
const MIN = 60_000;

describe('storage end to end: written through the flow, read through the API', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let productId: string;
  const device = 'e2e-meter-1';

  before(async () => {
    flux = await startFlux();
    const product = await flux.api('POST', '/api/products', {
      key: 'e2e-meter',
      name: 'E2E meter',
      metadata: {
        properties: [
          { id: 'temp', type: 'float', unit: '°C' },
          { id: 'count', type: 'int' },
          { id: 'door', type: 'bool' },
        ],
        storage: { unknown_properties: 'refuse', retention_days: 30 },
      },
    });
    assert.equal(product.status, 201, JSON.stringify(product.body));
    productId = product.body.id;
    assert.equal((await flux.api('POST', '/api/devices', { id: device, product_id: productId })).status, 201);
    const flows = [
      { id: 'st', type: 'tab', label: 'storage test' },
      { id: 'in1', z: 'st', type: 'http in', url: '/e2e/ingest', method: 'post', wires: [['fn1']] },
      {
        id: 'fn1', z: 'st', type: 'function', outputs: 1,
        func: `msg.req_body = msg.payload; msg.device = { id: msg.payload.device_id, product_id: ${JSON.stringify(productId)} };\nmsg.payload = msg.payload.messages;\nreturn msg;`,
        wires: [['store1']],
      },
      { id: 'store1', z: 'st', type: 'flux store', batchSize: 1000, flushMs: 15, wires: [['fn2']] },
      { id: 'fn2', z: 'st', type: 'function', outputs: 1, func: 'msg.payload = msg.stored; return msg;', wires: [['out1']] },
      { id: 'out1', z: 'st', type: 'http response', statusCode: '', headers: {}, wires: [] },
      { id: 'in2', z: 'st', type: 'http in', url: '/e2e/query', method: 'post', wires: [['q1']] },
      { id: 'q1', z: 'st', type: 'flux query', device: device, metric: 'temp', from: '', to: '', interval: '', agg: '', limit: '', wires: [['out2']] },
      { id: 'out2', z: 'st', type: 'http response', statusCode: '', headers: {}, wires: [] },
      { id: 'in3', z: 'st', type: 'http in', url: '/e2e/ready', method: 'get', wires: [['out3']] },
      { id: 'out3', z: 'st', type: 'http response', statusCode: '', headers: {}, wires: [] },
    ];
    const deploy = await fetch(`${flux.url}/editor/flows`, {
      method: 'POST',
      headers: { authorization: `Bearer ${flux.token}`, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(flows),
    });
    assert.equal(deploy.status, 204);
    // A full deploy answers before the new flow has started.
    for (let i = 0; i < 100 && (await fetch(`${flux.url}/flows/e2e/ready`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 50));
  });
  after(async () => {
    await flux?.stop();
  });

  const post = async (path: string, body: unknown) => {
    const res = await fetch(flux.url + "/flows" + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${text.slice(0, 300)}\n${flux.output().slice(-3000)}`);
    return { status: res.status, body: JSON.parse(text) as any };
  };

  const points: Point[] = [];

  it('stores 2 h of 1-per-second telemetry sent through the flow, with lossless coercion and refused unknowns', async () => {
    for (let chunk = 0; chunk < 2 * 3600; chunk += 600) {
      const messages = [];
      for (let s = chunk; s < chunk + 600; s++) {
        const ts = T0 + s * 1000;
        const temp = Math.round((20 + 5 * Math.sin(s / 300) + (s % 7) / 10) * 100) / 100;
        // Every 10th temperature arrives as a numeric string: converted, nothing lost.
        messages.push({ device_id: device, ts, values: { temp: s % 10 === 0 ? String(temp) : temp, count: s, door: s % 2 === 0, colour: 'red' } });
        points.push({ device, product: productId, metric: 'temp', ts, value: temp }, { device, product: productId, metric: 'count', ts, value: s });
      }
      const r = await post('/e2e/ingest', { device_id: device, messages });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.points, 1800);
      assert.equal(r.body.refused.length, 600, 'the undeclared property is refused by product setting');
      assert.deepEqual(r.body.refused[0], { metric: 'colour', reason: 'unknown' });
    }
    const metrics = (await flux.api('GET', '/api/metrics')).body as string;
    assert.match(metrics, /flux_storage_values_refused_total\{reason="unknown",service="flux"\} 7200/);
    assert.match(metrics, /flux_storage_points_written_total\{service="flux"\} 21600/);
  });

  it('answers latest values and the raw range', async () => {
    const latest = await flux.api('GET', `/api/devices/${device}/latest`);
    assert.equal(latest.status, 200);
    const lastS = 2 * 3600 - 1;
    assert.deepEqual(latest.body.values, { count: lastS, door: lastS % 2 === 0, temp: points.at(-2)!.value });
    const raw = await flux.api('GET', `/api/devices/${device}/telemetry?metric=temp&from=${new Date(T0 + 10_000).toISOString()}&to=${T0 + 13_000}`);
    assert.equal(raw.status, 200);
    assert.deepEqual(
      raw.body.items,
      points.filter((p) => p.metric === 'temp' && p.ts >= T0 + 10_000 && p.ts < T0 + 13_000).map((p) => ({ metric: 'temp', ts: p.ts, value: p.value })),
    );
  });

  it('answers 1-minute aggregates equal to an independent computation', async () => {
    const from = T0 + 7 * MIN, to = T0 + 97 * MIN;
    const r = await flux.api('GET', `/api/devices/${device}/telemetry?metric=temp,count&from=${from}&to=${to}&interval=1m&agg=avg,min,max,sum,count,first,last`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.interval, MIN);
    assertAggEqual(r.body.items, [...referenceAggregate(points, 'count', from, to, MIN), ...referenceAggregate(points, 'temp', from, to, MIN)]);
    assert.equal(r.body.items.length, 180);
  });

  it('serves a CSV report per device, time bucket and metric', async () => {
    const res = await fetch(`${flux.url}/api/reports/telemetry.csv?product=e2e-meter&from=${T0}&to=${T0 + 3 * MIN}&interval=1m&agg=avg,count`, { headers: { authorization: `Bearer ${flux.token}` } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /text\/csv/);
    const lines = (await res.text()).trim().split('\r\n');
    assert.equal(lines[0], 'device_id,time,metric,avg,count');
    assert.equal(lines.length, 1 + 3 * 3);
    const ref = referenceAggregate(points, 'temp', T0, T0 + 3 * MIN, MIN)[0]!;
    const tempRow = lines.find((l) => l.startsWith(`${device},${new Date(T0).toISOString()},temp,`))!.split(',');
    assert.ok(Math.abs(Number(tempRow[3]) - ref.avg!) < 1e-9);
    assert.equal(tempRow[4], '60');
    assert.equal(lines[1], `${device},${new Date(T0).toISOString()},count,29.5,60`);
  });

  it('runs a `flux query` node in a flow', async () => {
    const r = await post('/e2e/query', { from: T0, to: T0 + 10 * MIN, interval: '5m', agg: 'max' });
    assert.equal(r.status, 200);
    assertAggEqual(r.body, referenceAggregate(points, 'temp', T0, T0 + 10 * MIN, 5 * MIN).map((x) => ({ metric: x.metric, ts: x.ts, max: x.max })));
  });

  it('answers 400 for bad ranges and unknown aggregates, 404 for unknown devices', async () => {
    for (const qs of ['from=2026-11-03T12:00:00Z&to=2026-11-03T11:00:00Z', 'agg=median&interval=1m', 'from=yesterday', 'interval=0', 'interval=1ms&from=0&to=99999999999', 'limit=0']) {
      const r = await flux.api('GET', `/api/devices/${device}/telemetry?${qs}`);
      assert.equal(r.status, 400, qs);
      assert.equal(r.body.error.code, 'bad_request', qs);
    }
    assert.equal((await flux.api('GET', '/api/devices/nope/telemetry')).status, 404);
    assert.equal((await flux.api('GET', '/api/devices/nope/latest')).status, 404);
    assert.equal((await flux.api('GET', '/api/reports/telemetry.csv')).status, 400);
  });

  it('shows the store in /api/health as timeseries_db', async () => {
    const h = await flux.api('GET', '/api/health');
    assert.equal(h.body.components.timeseries_db.ok, true);
    assert.equal(h.body.components.timeseries_db.dialect, 'sqlite');
  });
});
