/**
 * "Nothing is lost when the database goes away": a stream of points and device events keeps flowing
 * while a real MariaDB revokes (and later restores) the store's access, and while a PostgreSQL
 * database refuses connections; the writer buffers on disk, flushes in order when access returns,
 * and every point and event arrives. Also: a full buffer drops its oldest points with a metric and
 * a log line, and a buffer left by a stopped process (points and events) is flushed by the next one.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import mysql from 'mysql2/promise';
import { createLogger } from '../../runtime/log/index.ts';
import { createMetrics } from '../../runtime/metrics/index.ts';
import { createStore, StoreWriter, type DeviceEvent, type Point, type TimeSeriesStore } from '../../runtime/storage/index.ts';
import { createTestDatabase, serverSql, MYSQL_SERVER_URL, type RawSql, type TestDatabase } from '../helpers/databases.ts';

const T0 = Date.UTC(2026, 10, 2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function collectingLog() {
  const lines: any[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: createLogger({ level: 'info', destination }), lines };
}

/** A store that forwards every call to `store` (methods can then be replaced one by one). */
function delegate(store: TimeSeriesStore): TimeSeriesStore {
  return {
    info: store.info,
    open: () => store.open(),
    close: () => store.close(),
    ping: () => store.ping(),
    write: (p) => store.write(p),
    latest: (d) => store.latest(d),
    latestMany: (d) => store.latestMany(d),
    range: (q) => store.range(q),
    aggregate: (q) => store.aggregate(q),
    metrics: (d) => store.metrics(d),
    deleteBefore: (p, b) => store.deleteBefore(p, b),
    writeEvents: (e) => store.writeEvents(e),
    events: (q) => store.events(q),
    deleteEventsBefore: (p, b) => store.deleteEventsBefore(p, b),
  };
}

/** Records the first timestamp of every batch the store accepts, to check the order of arrival. */
function recording(store: TimeSeriesStore): { store: TimeSeriesStore; firsts: number[] } {
  const firsts: number[] = [];
  const wrapped = delegate(store);
  wrapped.write = async (points: Point[]) => {
    await store.write(points);
    firsts.push(points[0]!.ts);
  };
  return { store: wrapped, firsts };
}

const tick = (device: string, i: number): DeviceEvent => ({ device, product: 'outage', event: 'tick', ts: T0 + i, payload: { n: i, note: `it's "${i}"` }, msg_id: `m${i}`, flagged: i % 100 === 0, problem: i % 100 === 0 ? 'a problem' : null });

/** Streams 50 points and one device event every 10 ms with consecutive timestamps until stopped. */
function stream(writer: StoreWriter, device: string) {
  let i = 0;
  let on = true;
  const done = (async () => {
    while (on) {
      const batch: Point[] = [];
      const event = tick(device, i);
      for (let k = 0; k < 50; k++, i++) batch.push({ device, product: 'outage', metric: 'seq', ts: T0 + i, value: i });
      await writer.write(batch, [event]);
      await sleep(10);
    }
  })();
  return {
    get sent() {
      return i;
    },
    async stop() {
      on = false;
      await done;
      return i;
    },
  };
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function assertComplete(reader: TimeSeriesStore, device: string, sent: number): Promise<void> {
  const got = await reader.range({ device, from: T0, to: T0 + sent + 1, limit: sent + 10 });
  assert.equal(got.length, sent, 'every streamed point is stored');
  for (let k = 0; k < got.length; k++) assert.equal(got[k]!.value, k, `point ${k}`);
  const events = await reader.events({ device, product: 'outage', from: T0, to: T0 + sent + 1, limit: sent });
  assert.equal(events.length, sent / 50, 'every streamed event is stored');
  events.forEach((e, k) => assert.deepEqual(e, tick(device, k * 50), `event ${k}`));
}

function assertInOrder(firsts: number[]): void {
  for (let k = 1; k < firsts.length; k++) assert.ok(firsts[k]! > firsts[k - 1]!, `batch ${k} arrived after a newer one (${firsts[k]} <= ${firsts[k - 1]})`);
}

describe('storage write path when the database goes away', function () {
  this.timeout(90_000);
  const dirs: string[] = [];
  const tmp = () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-buf-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  describe('MariaDB: a dedicated user whose GRANT is revoked mid-stream and restored', () => {
    let db: TestDatabase;
    let admin: mysql.Connection;
    const user = `flux_ts_u${process.pid}`;
    before(async () => {
      db = await createTestDatabase('mysql', 'flux_ts_outage');
      admin = await mysql.createConnection({ uri: MYSQL_SERVER_URL });
      await admin.query(`CREATE USER IF NOT EXISTS '${user}'@'%' IDENTIFIED BY 'pw-${process.pid}'`);
      await admin.query(`GRANT ALL PRIVILEGES ON \`${db.name}\`.* TO '${user}'@'%'`);
    });
    after(async () => {
      await admin?.query(`DROP USER IF EXISTS '${user}'@'%'`);
      await admin?.end();
      await db?.drop();
    });

    it('buffers on disk while access is revoked, then stores every point, in order', async () => {
      const u = new URL(db.url);
      u.username = user;
      u.password = `pw-${process.pid}`;
      const real = createStore({ dialect: 'mysql', url: u.toString() });
      await real.open();
      const { store, firsts } = recording(real);
      const { log, lines } = collectingLog();
      const writer = new StoreWriter({ store, log, metrics: createMetrics(), bufferDir: tmp(), retryMs: 200, bufferSegmentBytes: 64 * 1024 });
      writer.start();
      const s = stream(writer, 'outage-my');
      await waitFor('some points stored', () => writer.stats().written > 1000);

      await admin.query(`REVOKE ALL PRIVILEGES, GRANT OPTION FROM '${user}'@'%'`);
      const [procs] = await admin.query(`SELECT id FROM information_schema.processlist WHERE user = ?`, [user]);
      for (const p of procs as { id: number }[]) await admin.query(`KILL ${p.id}`).catch(() => {});
      await waitFor('the writer to notice', () => !writer.stats().up);
      await waitFor('points to pile up on disk', () => writer.stats().buffered_points > 2000);
      assert.ok(writer.stats().buffered_events > 10, `events are buffered with them: ${writer.stats().buffered_events}`);
      assert.ok(lines.some((l) => /unreachable: buffering/.test(l.msg)), 'a log line says it is buffering');

      await admin.query(`GRANT ALL PRIVILEGES ON \`${db.name}\`.* TO '${user}'@'%'`);
      await waitFor('the buffer to drain', () => writer.stats().up && writer.stats().buffered_points === 0);
      const sent = await s.stop();
      await writer.flush();
      await waitFor('the last writes', () => writer.stats().buffered_points === 0 && writer.stats().queued === 0);
      await writer.stop();

      const reader = createStore({ dialect: 'mysql', url: db.url });
      await reader.open();
      await assertComplete(reader, 'outage-my', sent);
      await reader.close();
      await real.close();
      assertInOrder(firsts);
      assert.equal(writer.stats().dropped, 0);
      assert.equal(writer.stats().events_dropped, 0);
      assert.ok(lines.some((l) => /reachable again/.test(l.msg)));
    });
  });

  describe('PostgreSQL: a database of our own set to refuse connections, its backends terminated', () => {
    let db: TestDatabase;
    let admin: RawSql;
    before(async () => {
      db = await createTestDatabase('postgres', 'flux_ts_outage');
      admin = await serverSql('postgres');
    });
    after(async () => {
      await admin?.query(`ALTER DATABASE "${db.name}" ALLOW_CONNECTIONS true`).catch(() => {});
      await admin?.close();
      await db?.drop();
    });

    it('buffers while the database is closed to connections, then stores every point, in order', async () => {
      const real = createStore({ dialect: 'postgres', url: db.url });
      await real.open();
      const { store, firsts } = recording(real);
      const { log } = collectingLog();
      const writer = new StoreWriter({ store, log, metrics: createMetrics(), bufferDir: tmp(), retryMs: 200, bufferSegmentBytes: 64 * 1024 });
      writer.start();
      const s = stream(writer, 'outage-pg');
      await waitFor('some points stored', () => writer.stats().written > 1000);

      await admin.query(`ALTER DATABASE "${db.name}" ALLOW_CONNECTIONS false`);
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}' AND pid <> pg_backend_pid()`);
      await waitFor('the writer to notice', () => !writer.stats().up);
      await waitFor('points to pile up on disk', () => writer.stats().buffered_points > 2000);
      assert.ok(writer.stats().buffered_events > 10, `events are buffered with them: ${writer.stats().buffered_events}`);

      await admin.query(`ALTER DATABASE "${db.name}" ALLOW_CONNECTIONS true`);
      await waitFor('the buffer to drain', () => writer.stats().up && writer.stats().buffered_points === 0);
      const sent = await s.stop();
      await writer.flush();
      await waitFor('the last writes', () => writer.stats().buffered_points === 0 && writer.stats().queued === 0);
      await writer.stop();
      await assertComplete(real, 'outage-pg', sent);
      await real.close();
      assertInOrder(firsts);
    });
  });

  describe('the buffer itself (SQLite store switched off and on)', () => {
    function switchable(file: string) {
      const real = createStore({ dialect: 'sqlite', url: 'sqlite:', file });
      let down = false;
      const store = delegate(real);
      const check = () => {
        if (down) throw Object.assign(new Error('connect ECONNREFUSED (test switch)'), { code: 'ECONNREFUSED' });
      };
      store.write = async (p) => (check(), real.write(p));
      store.writeEvents = async (e) => (check(), real.writeEvents(e));
      store.ping = async () => (check(), real.ping());
      return { real, store, set: (d: boolean) => void (down = d) };
    }

    it('drops the oldest points when full, with a metric and a log line, and keeps the newest', async () => {
      const dir = tmp();
      const sw = switchable(path.join(dir, 'ts.db'));
      await sw.real.open();
      sw.set(true);
      const { log, lines } = collectingLog();
      const metrics = createMetrics();
      const writer = new StoreWriter({ store: sw.store, log, metrics, bufferDir: path.join(dir, 'buf'), retryMs: 50, bufferMaxBytes: 200_000, bufferSegmentBytes: 20_000 });
      writer.start();
      for (let b = 0; b < 100; b++) {
        const batch: Point[] = [];
        for (let k = 0; k < 100; k++) batch.push({ device: 'full', product: 'p', metric: 'seq', ts: T0 + b * 100 + k, value: b * 100 + k });
        await writer.write(batch);
      }
      const st = writer.stats();
      assert.ok(st.dropped > 0, 'some points were dropped');
      assert.ok(st.buffered_bytes <= 200_000);
      assert.equal(st.dropped + st.buffered_points, 10_000, 'every point is either buffered or counted as dropped');
      const text = await metrics.metrics();
      assert.match(text, new RegExp(`flux_storage_points_dropped_total\\{reason="buffer_full",service="flux"\\} ${st.dropped}`));
      assert.ok(lines.some((l) => l.level === 'error' && /buffer full: dropped the oldest/.test(l.msg)));

      sw.set(false);
      await waitFor('the buffer to drain', () => writer.stats().buffered_points === 0);
      await writer.stop();
      const got = await sw.real.range({ device: 'full', from: T0, to: T0 + 10_000, limit: 20_000 });
      assert.equal(got.length, st.buffered_points);
      assert.equal(got.at(-1)!.value, 9999, 'the newest point survived');
      assert.equal(got[0]!.value, st.dropped, 'exactly the oldest were dropped');
      await sw.real.close();
    });

    it('a buffer left by a stopped process is flushed first by the next one', async () => {
      const dir = tmp();
      const sw = switchable(path.join(dir, 'ts.db'));
      await sw.real.open();
      sw.set(true);
      const { log } = collectingLog();
      const first = new StoreWriter({ store: sw.store, log, metrics: createMetrics(), bufferDir: path.join(dir, 'buf'), retryMs: 50 });
      first.start();
      await first.write([{ device: 'restart', product: 'p', metric: 'v', ts: T0, value: 1 }]);
      await first.write([{ device: 'restart', product: 'p', metric: 'v', ts: T0 + 1, value: 2 }]);
      await first.stop();
      assert.ok(fs.readdirSync(path.join(dir, 'buf')).length > 0, 'the buffer is on disk');

      sw.set(false);
      const second = new StoreWriter({ store: sw.store, log, metrics: createMetrics(), bufferDir: path.join(dir, 'buf'), retryMs: 50 });
      second.start();
      await second.write([{ device: 'restart', product: 'p', metric: 'v', ts: T0 + 2, value: 3 }]);
      await waitFor('everything stored', async () => (await sw.real.range({ device: 'restart', from: T0, to: T0 + 10 })).length === 3);
      await second.stop();
      assert.deepEqual(fs.readdirSync(path.join(dir, 'buf')), []);
      await sw.real.close();
    });

    it('device events wait in the buffer like points: across a restart, whole, then stored once', async () => {
      const dir = tmp();
      const sw = switchable(path.join(dir, 'ts.db'));
      await sw.real.open();
      sw.set(true);
      const { log } = collectingLog();
      const metrics = createMetrics();
      const first = new StoreWriter({ store: sw.store, log, metrics, bufferDir: path.join(dir, 'buf'), retryMs: 50 });
      first.start();
      const door = (i: number): DeviceEvent => ({ device: 'ev-restart', product: 'p', event: i % 2 ? 'door' : 'window', ts: T0 + i, payload: { open: i % 2 === 1, text: `温度 "${i}" \\ ✓` }, msg_id: `u${i}`, flagged: i === 3, problem: i === 3 ? "field 'open' is required" : null });
      // accepted while the store is away: the writer answers once they are on disk
      await first.write([{ device: 'ev-restart', product: 'p', metric: 'v', ts: T0, value: 1 }], [door(0), door(1)]);
      await first.write([], [door(2), door(3)]);
      assert.deepEqual([first.stats().buffered_points, first.stats().buffered_events], [1, 4]);
      assert.match(await metrics.metrics(), /flux_storage_buffer_events\{service="flux"\} 4/);
      await first.stop();
      assert.deepEqual(await sw.real.events({ device: 'ev-restart', product: 'p', from: 0, to: T0 + 100 }), [], 'nothing reached the store');

      sw.set(false);
      const second = new StoreWriter({ store: sw.store, log, metrics: createMetrics(), bufferDir: path.join(dir, 'buf'), retryMs: 50 });
      second.start();
      await second.write([], [door(4)]);
      await waitFor('the buffer to drain', () => second.stats().buffered_events === 0 && second.stats().queued === 0);
      await second.flush();
      const stored = await sw.real.events({ device: 'ev-restart', product: 'p', from: 0, to: T0 + 100 });
      assert.deepEqual(stored, [0, 1, 2, 3, 4].map(door), 'every event, whole, once, in order');
      assert.equal(second.stats().events_written, 5);
      assert.equal((await sw.real.range({ device: 'ev-restart', from: 0, to: T0 + 100 })).length, 1);
      await second.stop();
      assert.deepEqual(fs.readdirSync(path.join(dir, 'buf')), []);
      await sw.real.close();
    });
  });
});
