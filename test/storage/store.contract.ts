/**
 * The one store contract suite: every backend's test file calls
 * `runStoreContract` with a factory, so SQLite, MariaDB, PostgreSQL and TDengine answer the same
 * questions the same way. A backend that skips a test must say why in `skips`.
 */
import assert from 'node:assert/strict';
import type { AggRow, DeviceEvent, Point, Sample, TimeSeriesStore, Value } from '../../runtime/storage/index.ts';

export interface ContractTarget {
  store: TimeSeriesStore;
  /** drops what the factory created */
  cleanup(): Promise<void>;
}

const T0 = Date.UTC(2026, 10, 1, 0, 0, 0);
const MIN = 60_000;

let seq = 0;
/** Fresh device ids per test so tests never see each other's data. */
const dev = (name: string) => `${name}-${process.pid}-${++seq}`;

/** Each device gets its own product unless told: one product's metric keeps one type (a TDengine column). */
function pt(device: string, metric: string, ts: number, value: Value, product = `prod-${device}`): Point {
  return { device, product, metric, ts, value };
}

/** Independent reference: aggregates computed in plain JS from the points written. */
export function referenceAggregate(points: Point[], metric: string, from: number, to: number, interval: number): AggRow[] {
  const buckets = new Map<number, Point[]>();
  for (const p of points) {
    if (p.metric !== metric || p.ts < from || p.ts >= to) continue;
    const b = Math.floor(p.ts / interval) * interval;
    let list = buckets.get(b);
    if (!list) buckets.set(b, (list = []));
    list.push(p);
  }
  return [...buckets.keys()]
    .sort((a, b) => a - b)
    .map((b) => {
      const list = buckets.get(b)!.sort((x, y) => x.ts - y.ts);
      const nums = list.map((p) => p.value).filter((v): v is number => typeof v === 'number');
      const sum = nums.reduce((a, c) => a + c, 0);
      return {
        metric,
        ts: b,
        avg: nums.length ? sum / nums.length : null,
        min: nums.length ? Math.min(...nums) : null,
        max: nums.length ? Math.max(...nums) : null,
        sum: nums.length ? sum : null,
        count: list.length,
        first: list[0]!.value,
        last: list.at(-1)!.value,
      };
    });
}

export function assertAggEqual(actual: AggRow[], expected: AggRow[], where = ''): void {
  assert.equal(actual.length, expected.length, `${where} bucket count`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    assert.equal(a.metric, e.metric, `${where} metric of row ${i}`);
    assert.equal(a.ts, e.ts, `${where} bucket start of row ${i}`);
    for (const k of ['avg', 'min', 'max', 'sum'] as const) {
      if (!(k in a)) continue;
      const av = a[k], ev = e[k];
      if (ev === null || ev === undefined) assert.equal(av, null, `${where} ${k} of row ${i}`);
      else assert.ok(typeof av === 'number' && Math.abs(av - ev) <= 1e-9 * Math.max(1, Math.abs(ev)), `${where} ${k} of row ${i}: ${av} != ${ev}`);
    }
    if ('count' in a) assert.equal(a.count, e.count, `${where} count of row ${i}`);
    if ('first' in a) assert.equal(a.first, e.first, `${where} first of row ${i}`);
    if ('last' in a) assert.equal(a.last, e.last, `${where} last of row ${i}`);
  }
}

export function runStoreContract(name: string, factory: () => Promise<ContractTarget>, skips: Record<string, string> = {}): void {
  describe(`time-series store contract: ${name}`, function () {
    this.timeout(60_000);
    let target: ContractTarget;
    let store: TimeSeriesStore;
    before(async function () {
      target = await factory();
      store = target.store;
    });
    after(async () => {
      await target?.store.close();
      await target?.cleanup();
    });
    const test = (title: string, fn: () => Promise<void>) => {
      if (skips[title]) it.skip(`${title} (skipped: ${skips[title]})`, fn);
      else it(title, fn);
    };

    test('writes a batch and reads it back in time order with its types', async () => {
      const d = dev('types');
      await store.write([pt(d, 'temp', T0 + 2000, 21.5), pt(d, 'on', T0 + 1000, true), pt(d, 'mode', T0 + 1000, 'eco'), pt(d, 'temp', T0 + 1000, -3), pt(d, 'on', T0 + 2000, false)]);
      const got = await store.range({ device: d, from: T0, to: T0 + 10_000 });
      assert.deepEqual(got, [
        { metric: 'mode', ts: T0 + 1000, value: 'eco' },
        { metric: 'on', ts: T0 + 1000, value: true },
        { metric: 'temp', ts: T0 + 1000, value: -3 },
        { metric: 'on', ts: T0 + 2000, value: false },
        { metric: 'temp', ts: T0 + 2000, value: 21.5 },
      ]);
    });

    test('a range is [from, to), filtered by metric and capped by limit', async () => {
      const d = dev('range');
      const pts: Point[] = [];
      for (let i = 0; i < 10; i++) pts.push(pt(d, 'a', T0 + i * 1000, i), pt(d, 'b', T0 + i * 1000, i * 10));
      await store.write(pts);
      const a = await store.range({ device: d, metrics: ['a'], from: T0 + 2000, to: T0 + 5000 });
      assert.deepEqual(a.map((s) => [s.ts - T0, s.value]), [[2000, 2], [3000, 3], [4000, 4]]);
      const limited = await store.range({ device: d, from: T0, to: T0 + 100_000, limit: 3 });
      assert.deepEqual(limited.map((s) => `${s.metric}${s.value}`), ['a0', 'b0', 'a1']);
      assert.deepEqual(await store.range({ device: d, metrics: ['nope'], from: T0, to: T0 + 100_000 }), []);
    });

    test('latest answers the newest value of each metric', async () => {
      const d = dev('latest');
      await store.write([pt(d, 'a', T0 + 5000, 5), pt(d, 'a', T0 + 9000, 9), pt(d, 'b', T0 + 1000, 'x'), pt(d, 'a', T0 + 7000, 7)]);
      assert.deepEqual(await store.latest(d), [
        { metric: 'a', ts: T0 + 9000, value: 9 },
        { metric: 'b', ts: T0 + 1000, value: 'x' },
      ]);
      assert.deepEqual(await store.latest(dev('nobody')), []);
    });

    test('the same device, metric and time written twice is stored once, last write wins', async () => {
      const d = dev('dup');
      await store.write([pt(d, 'a', T0, 1), pt(d, 'a', T0, 2)]);
      await store.write([pt(d, 'a', T0, 3), pt(d, 'b', T0, 'kept')]);
      await store.write([pt(d, 'a', T0 + 1, 4)]);
      const got = await store.range({ device: d, from: T0, to: T0 + 10 });
      assert.deepEqual(got, [
        { metric: 'a', ts: T0, value: 3 },
        { metric: 'b', ts: T0, value: 'kept' },
        { metric: 'a', ts: T0 + 1, value: 4 },
      ]);
    });

    test('aggregates per interval match an independent computation', async () => {
      const d = dev('agg');
      const pts: Point[] = [];
      let x = 12345;
      const rnd = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
      for (let i = 0; i < 3600; i++) {
        const ts = T0 + i * 1000 + Math.floor(rnd() * 900);
        pts.push(pt(d, 'temp', ts, Math.round((20 + rnd() * 10) * 1000) / 1000));
        if (i % 7 === 0) pts.push(pt(d, 'hum', ts, Math.round(rnd() * 100)));
      }
      await store.write(pts);
      const from = T0 + 5 * MIN + 30_000, to = T0 + 47 * MIN;
      const rows = await store.aggregate({ device: d, metrics: ['temp', 'hum'], from, to, interval: MIN, aggs: ['avg', 'min', 'max', 'sum', 'count', 'first', 'last'] });
      const expected = [...referenceAggregate(pts, 'hum', from, to, MIN), ...referenceAggregate(pts, 'temp', from, to, MIN)];
      assertAggEqual(rows, expected, 'temp+hum');
      const fiveMin = await store.aggregate({ device: d, metrics: ['temp'], from: T0, to: T0 + 3600_000, interval: 5 * MIN, aggs: ['avg', 'count'] });
      assertAggEqual(fiveMin, referenceAggregate(pts, 'temp', T0, T0 + 3600_000, 5 * MIN), '5 min');
      assert.deepEqual(Object.keys(fiveMin[0]!).sort(), ['avg', 'count', 'metric', 'ts']);
    });

    test('aggregates of a text metric count and pick first/last, with null numeric aggregates', async () => {
      const d = dev('aggtext');
      await store.write([pt(d, 'state', T0 + 1000, 'idle'), pt(d, 'state', T0 + 2000, 'run'), pt(d, 'state', T0 + 61_000, 'stop')]);
      const rows = await store.aggregate({ device: d, from: T0, to: T0 + 2 * MIN, interval: MIN, aggs: ['count', 'first', 'last', 'avg'] });
      assert.deepEqual(rows, [
        { metric: 'state', ts: T0, count: 2, first: 'idle', last: 'run', avg: null },
        { metric: 'state', ts: T0 + MIN, count: 1, first: 'stop', last: 'stop', avg: null },
      ]);
    });

    test('devices and metric names are kept apart exactly (case, dots, quotes, unicode)', async () => {
      const base = dev('Case');
      const upper = base, lower = base.toLowerCase();
      const odd = `it's "q" \\ 温度 ✓`;
      await store.write([pt(upper, 'Temp', T0, 1), pt(upper, 'temp', T0, 2), pt(upper, 'temp.c', T0, 3), pt(lower, 'temp', T0, 4), pt(upper, 'note', T0 + 1, odd)]);
      assert.deepEqual((await store.latest(upper)).map((s) => [s.metric, s.value]), [['Temp', 1], ['note', odd], ['temp', 2], ['temp.c', 3]]);
      assert.deepEqual((await store.latest(lower)).map((s) => [s.metric, s.value]), [['temp', 4]]);
      assert.deepEqual(await store.metrics(upper), ['Temp', 'note', 'temp', 'temp.c']);
    });

    test('retention deletes only the product\'s values older than the cut-off', async () => {
      const a = dev('ret-a'), b = dev('ret-b');
      const pa = `prod-ret-${process.pid}-${seq}`, pb = `prod-keep-${process.pid}-${seq}`;
      const pts: Point[] = [];
      for (let i = 0; i < 12_000; i++) pts.push(pt(a, 'v', T0 + i * 1000, i, pa));
      for (let i = 0; i < 10; i++) pts.push(pt(b, 'v', T0 + i * 1000, i, pb));
      await store.write(pts);
      const deleted = await store.deleteBefore(pa, T0 + 11_000 * 1000);
      assert.ok(deleted === 11_000 || deleted === -1, `deleted ${deleted}`);
      const left = await store.range({ device: a, from: 0, to: T0 + 10 ** 9 });
      assert.equal(left.length, 1000);
      assert.equal(left[0]!.ts, T0 + 11_000 * 1000);
      assert.equal((await store.range({ device: b, from: 0, to: T0 + 10 ** 9 })).length, 10);
      assert.equal(await store.deleteBefore(`unknown-product-${seq}`, T0), 0);
    });

    test('a 20,000-point batch over 50 devices is written in one call', async () => {
      const base = dev('bulk');
      const pts: Point[] = [];
      for (let i = 0; i < 20_000; i++) pts.push(pt(`${base}-${i % 50}`, Math.floor(i / 50) % 2 ? 'a' : 'b', T0 + Math.floor(i / 100) * 1000, i));
      await store.write(pts);
      const got = await store.aggregate({ device: `${base}-7`, from: T0, to: T0 + 3_600_000, interval: 3_600_000, aggs: ['count', 'sum'] });
      const mine = pts.filter((p) => p.device === `${base}-7`);
      const sumOf = (m: string) => mine.filter((p) => p.metric === m).reduce((s, p) => s + (p.value as number), 0);
      assert.deepEqual(got, [
        { metric: 'a', ts: T0, count: 200, sum: sumOf('a') },
        { metric: 'b', ts: T0, count: 200, sum: sumOf('b') },
      ]);
    });

    test('stores device events whole and reads them by device, event, range and order', async () => {
      const d = dev('ev'), other = dev('ev-other');
      const product = `prod-ev-${process.pid}-${seq}`;
      const odd = { open: true, note: `it's "q" \\ 温度 ✓`, nested: { a: [1, 2.5, null] } };
      const ev = (device: string, event: string, ts: number, payload: Record<string, unknown>, msg_id: string | null = null, flagged = false, problem: string | null = null): DeviceEvent => ({ device, product, event, ts, payload, msg_id, flagged, problem });
      await store.writeEvents([
        ev(d, 'door', T0 + 2000, { open: false }, 'm2'),
        ev(d, 'door', T0 + 1000, odd, 'm1'),
        ev(d, 'alarm', T0 + 3000, { level: 'x' }, 'm3', true, "field 'level': expected int, got string"),
        ev(other, 'door', T0 + 1500, { open: true }),
      ]);
      // a retried batch stores each event once
      await store.writeEvents([ev(d, 'door', T0 + 2000, { open: false }, 'm2')]);
      const all = await store.events({ device: d, product, from: T0, to: T0 + 10_000 });
      assert.deepEqual(all.map((e) => [e.event, e.ts, e.msg_id]), [['door', T0 + 1000, 'm1'], ['door', T0 + 2000, 'm2'], ['alarm', T0 + 3000, 'm3']]);
      assert.deepEqual(all[0]!.payload, odd);
      assert.equal(all[0]!.product, product);
      assert.equal(all[0]!.flagged, false);
      assert.equal(all[0]!.problem, null);
      assert.equal(all[2]!.flagged, true);
      assert.equal(all[2]!.problem, "field 'level': expected int, got string");
      const doors = await store.events({ device: d, product, event: 'door', from: T0, to: T0 + 10_000, order: 'desc', limit: 1 });
      assert.deepEqual(doors.map((e) => e.ts), [T0 + 2000]);
      assert.deepEqual((await store.events({ device: d, product, from: T0 + 1001, to: T0 + 3000 })).map((e) => e.ts), [T0 + 2000]);
      const none = await store.events({ device: other, product, from: T0, to: T0 + 10_000 });
      assert.equal(none.length, 1);
      assert.equal(none[0]!.msg_id, null);
      assert.deepEqual(await store.events({ device: dev('ev-ghost'), product, from: 0, to: T0 }), []);
      const deleted = await store.deleteEventsBefore(product, T0 + 2000);
      assert.ok(deleted === 2 || deleted === -1, `deleted ${deleted}`);
      assert.deepEqual((await store.events({ device: d, product, from: 0, to: T0 + 10_000 })).map((e) => e.ts), [T0 + 2000, T0 + 3000]);
      assert.equal(await store.deleteEventsBefore(`unknown-product-${seq}`, T0), 0);
    });

    test('keeps every event of a device in one millisecond (another event id or message id), a retried one once', async () => {
      const d = dev('ev-ms');
      const product = `prod-evms-${process.pid}-${seq}`;
      const ev = (event: string, msg_id: string, n: number): DeviceEvent => ({ device: d, product, event, ts: T0 + 5, payload: { n }, msg_id, flagged: false, problem: null });
      await store.writeEvents([ev('door', 'm1', 1), ev('door', 'm2', 2), ev('window', 'm1', 3)]);
      await store.writeEvents([ev('door', 'm3', 4)]); // a later batch, the same millisecond
      await store.writeEvents([ev('door', 'm2', 2), ev('door', 'm1', 1)]); // a retried batch
      await store.writeEvents([ev('door', 'm2', 22)]); // the same event again: the last write wins
      const got = await store.events({ device: d, product, from: T0, to: T0 + 10 });
      assert.deepEqual(got.map((e) => [e.event, e.msg_id, e.payload.n, e.ts]), [['door', 'm1', 1, T0 + 5], ['door', 'm2', 22, T0 + 5], ['door', 'm3', 4, T0 + 5], ['window', 'm1', 3, T0 + 5]]);
      const desc = await store.events({ device: d, product, from: T0, to: T0 + 10, order: 'desc', limit: 2 });
      assert.equal(desc.length, 2);
      assert.deepEqual((await store.events({ device: d, product, event: 'window', from: T0, to: T0 + 10 })).map((e) => e.msg_id), ['m1']);
      assert.equal(await store.deleteEventsBefore(product, T0 + 6).then((n) => n === 4 || n === -1), true);
      assert.deepEqual(await store.events({ device: d, product, from: T0, to: T0 + 10 }), []);
    });

    test('a raw range comes newest first with order desc, and skips offset values', async () => {
      const d = dev('order');
      await store.write([1, 2, 3, 4, 5].map((i) => pt(d, 'v', T0 + i * 1000, i)));
      const desc = await store.range({ device: d, from: T0, to: T0 + 10_000, order: 'desc', limit: 2 });
      assert.deepEqual(desc.map((s) => s.value), [5, 4]);
      const next = await store.range({ device: d, from: T0, to: T0 + 10_000, order: 'desc', limit: 2, offset: 2 });
      assert.deepEqual(next.map((s) => s.value), [3, 2]);
      const asc = await store.range({ device: d, from: T0, to: T0 + 10_000, limit: 2, offset: 3 });
      assert.deepEqual(asc.map((s) => s.value), [4, 5]);
    });

    test('latestMany answers the newest values of many devices at once, empty for unknown ones', async () => {
      const a = dev('lm-a'), b = dev('lm-b'), ghost = dev('lm-ghost');
      await store.write([pt(a, 't', T0, 1), pt(a, 't', T0 + 1000, 2), pt(a, 'h', T0, 50), pt(b, 't', T0 + 5000, 9)]);
      const got = await store.latestMany([a, b, ghost]);
      assert.deepEqual(got.get(a), [{ metric: 'h', ts: T0, value: 50 }, { metric: 't', ts: T0 + 1000, value: 2 }]);
      assert.deepEqual(got.get(b), [{ metric: 't', ts: T0 + 5000, value: 9 }]);
      assert.deepEqual(got.get(ghost), []);
      assert.deepEqual(await store.latestMany([]), new Map());
    });

    test('an unknown device answers empty results, not errors', async () => {
      const d = dev('ghost');
      assert.deepEqual(await store.range({ device: d, from: 0, to: T0 }), []);
      assert.deepEqual(await store.aggregate({ device: d, from: 0, to: T0, interval: MIN, aggs: ['avg'] }), []);
      assert.deepEqual(await store.metrics(d), []);
      await store.ping();
    });
  });
}

export type { Sample };
