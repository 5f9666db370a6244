import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createUplinkLog, LogRefusedError, SYNC_EVERY_MS, type UplinkLog } from '../../runtime/uplink-log/index.ts';
import { up } from './entries.ts';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'flux-log-'));

describe('uplink log', () => {
  const open: UplinkLog[] = [];
  const make = (dir: string, o: Partial<Parameters<typeof createUplinkLog>[0]> = {}) => {
    const log = createUplinkLog({ dir, fsync: 'always', retentionMs: 3_600_000, maxBytes: 1 << 30, ...o });
    open.push(log);
    return log;
  };
  afterEach(async () => {
    for (const l of open.splice(0)) await l.close();
  });

  it('acknowledges appends in groups, keeps every field and byte, and reads them back by device and time', async () => {
    const dir = tmp();
    const log = make(dir);
    await log.open();
    const seqs = await Promise.all(Array.from({ length: 500 }, (_, i) => log.appendAsync(up(i, i === 7 ? { type: 'event', eventId: 'door', transport: 'http' } : {}))));
    assert.deepEqual(seqs, Array.from({ length: 500 }, (_, i) => i + 1));
    assert.ok(log.stats().groups < 50, `500 appends of one turn went out in ${log.stats().groups} writes`);
    const page = await log.read({ deviceId: 'dev-1', limit: 10 });
    assert.deepEqual(page.map((r) => r.id), ['msg-1', 'msg-4', 'msg-7', 'msg-10', 'msg-13', 'msg-16', 'msg-19', 'msg-22', 'msg-25', 'msg-28']);
    const seven = page[2]!;
    assert.deepEqual({ ...seven, payload: seven.payload.toString('hex') }, { ...up(7, { type: 'event', eventId: 'door', transport: 'http' }), seq: 8, payload: up(7).payload.toString('hex') });
    const next = await log.read({ deviceId: 'dev-1', limit: 3, afterSeq: page[9]!.seq });
    assert.deepEqual(next.map((r) => r.id), ['msg-31', 'msg-34', 'msg-37']);
    const range = await log.read({ from: 1_700_000_000_100, to: 1_700_000_000_102, limit: 100 });
    assert.deepEqual(range.map((r) => r.id), ['msg-100', 'msg-101', 'msg-102']);
  });

  it('keeps fields that are not ASCII byte for byte, beside ASCII records of the same group and after a restart', async () => {
    const dir = tmp();
    let log = make(dir);
    await log.open();
    // MQTT topics are UTF-8 and event ids come from topics: the strings are written as one, so a
    // wrong length here would shift every field after it
    const odd = [
      up(1, { topic: '/boiler/dev-1/events/温度过高/post', type: 'event', eventId: '温度过高' }),
      up(2, { topic: '/boiler/dev-2/properties/report', productKey: 'kessel-ü' }),
      up(3, { topic: '/boiler/dev-0/events/🔥/post', type: 'event', eventId: '🔥', deviceId: 'dev-0' }),
    ];
    // lone surrogates cannot be UTF-8: each is written as U+FFFD, and joined they would have paired up
    const lone = up(4, { productKey: 'kessel\uD83D', topic: '\uDD25/boiler/dev-1/properties/report' });
    const all = [up(10), ...odd, lone, up(11)];
    await Promise.all(all.map((u) => log.appendAsync(u)));
    const expect = all.map((u, i) => ({ ...u, ...(u === lone ? { productKey: 'kessel\uFFFD', topic: '\uFFFD/boiler/dev-1/properties/report' } : {}), seq: i + 1, payload: u.payload.toString('hex') }));
    const asRead = async () => (await log.read({ from: 0, to: 2_000_000_000_000, limit: 10 })).map((r) => ({ ...r, payload: r.payload.toString('hex') }));
    assert.deepEqual(await asRead(), expect);
    await log.close();
    log = make(dir);
    await log.open();
    assert.deepEqual(await asRead(), expect, 'read back from the segment after a restart (CRCs and lengths check)');
  });

  it('scans a time range across segments in seq order, a slice at a time (what a plugin replay reads)', async () => {
    const log = make(tmp(), { fsync: 'os', segmentBytes: 64 * 1024 });
    await log.open();
    // a segment rolls over between group commits: ten groups
    for (let g = 0; g < 10; g++) await Promise.all(Array.from({ length: 1000 }, (_, i) => log.appendAsync(up(g * 1000 + i))));
    assert.ok(log.stats().segments > 5, `${log.stats().segments} segments`);
    const seen: number[] = [];
    let batches = 0;
    for await (const batch of log.scan({ from: 1_700_000_000_100, to: 1_700_000_009_000 })) {
      assert.ok(batch.length > 0 && batch.length <= 4096);
      batches++;
      for (const r of batch) seen.push(r.seq);
    }
    assert.equal(seen.length, 8901);
    assert.deepEqual([seen[0], seen.at(-1)], [101, 9001]);
    assert.ok(seen.every((s, i) => i === 0 || s === seen[i - 1]! + 1), 'in seq order, none missing');
    assert.ok(batches > 1);
    let none = 0;
    for await (const batch of log.scan({ from: 0, to: 1_000 })) none += batch.length;
    assert.equal(none, 0);
    // newest first (the console's raw frames), a page at a time across segment ends
    const newest = await log.read({ order: 'desc', limit: 3 });
    assert.deepEqual(newest.map((r) => r.seq), [10_000, 9999, 9998]);
    const seqs: number[] = [];
    for (let before: number | undefined = 9001; seqs.length < 2000; ) {
      const page = await log.read({ order: 'desc', beforeSeq: before, limit: 700 });
      seqs.push(...page.map((r) => r.seq));
      before = page.at(-1)!.seq;
    }
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => 9000 - i), 'every entry once, newest first');
    assert.deepEqual((await log.read({ order: 'desc', from: 1_700_000_000_100, to: 1_700_000_000_102, limit: 100 })).map((r) => r.id), ['msg-102', 'msg-101', 'msg-100']);
  });

  it('processes again after a restart exactly the entries not marked handled, in order', async () => {
    const dir = tmp();
    const a = make(dir, { segmentBytes: 4096 });
    await a.open();
    for (let i = 0; i < 300; i++) await a.appendAsync(up(i));
    for (let s = 1; s <= 120; s++) a.handled(s);
    a.handled(200); // out of order: held until 121…199 are handled
    assert.equal(a.stats().handledSeq, 120);
    await a.close();
    const b = make(dir, { segmentBytes: 4096 });
    const { unhandled } = await b.open();
    assert.equal(unhandled, 180);
    const again: number[] = [];
    for await (const r of b.unhandled()) again.push(r.seq);
    assert.equal(again.length, 180);
    assert.deepEqual(again.slice(0, 3), [121, 122, 123]);
    assert.ok(b.stats().segments > 3, 'the log rolled over into several segments');
    assert.equal(await b.appendAsync(up(1000)), 301, 'appends continue after the last entry');
  });

  it('cuts a torn tail (a crash mid-write) and keeps every whole entry before it', async () => {
    const dir = tmp();
    const a = make(dir);
    await a.open();
    for (let i = 0; i < 10; i++) await a.appendAsync(up(i));
    await a.close();
    const seg = fs.readdirSync(dir).find((n) => n.endsWith('.seg'))!;
    const file = path.join(dir, seg);
    const whole = fs.statSync(file).size;
    fs.appendFileSync(file, Buffer.from([0x40, 0, 0, 0, 1, 2, 3])); // half a record
    const b = make(dir);
    const { truncatedBytes } = await b.open();
    assert.equal(truncatedBytes, 7);
    assert.equal(fs.statSync(file).size, whole);
    assert.equal(await b.appendAsync(up(10)), 11);
    assert.equal((await b.read({ limit: 100 })).length, 11);
  });

  // the default segment size too: a small budget's one open segment must not keep it full for ever
  for (const segmentBytes of [8 * 1024, undefined]) {
    it(`refuses appends while unhandled entries fill FLUX_RAW_MAX_BYTES, and accepts again once they are handled (segments of ${segmentBytes ?? 'the default'} bytes)`, async () => {
      const dir = tmp();
      const log = make(dir, { maxBytes: 64 * 1024, ...(segmentBytes ? { segmentBytes } : {}) });
      await log.open();
      let accepted = 0;
      let refused: unknown;
      for (let i = 0; i < 5000 && !refused; i++) {
        await log.appendAsync(up(i, { payload: Buffer.alloc(200, 7) })).then(() => accepted++, (err) => (refused = err));
      }
      assert.ok(refused instanceof LogRefusedError && refused.code === 'log_full', String(refused));
      assert.ok(accepted > 200 && accepted < 320, `${accepted} entries of ~270 bytes in 64 KiB`);
      assert.equal(log.stats().full, true);
      for (let s = 1; s <= accepted; s++) log.handled(s);
      assert.equal(typeof (await log.appendAsync(up(9999))), 'number', 'handled segments make room');
      assert.ok(log.stats().bytes <= 64 * 1024);
      assert.equal((await log.read({ limit: 10_000 })).at(-1)!.id, 'msg-9999');
    });
  }

  it('deletes handled segments older than the retention, never unhandled ones', async () => {
    const dir = tmp();
    const log = make(dir, { retentionMs: 1000, segmentBytes: 2048 });
    await log.open();
    const old = Date.now() - 10_000;
    for (let i = 0; i < 100; i++) await log.appendAsync(up(i, { ts: old }));
    for (let s = 1; s <= 50; s++) log.handled(s);
    await log.appendAsync(up(100, { ts: Date.now(), payload: Buffer.alloc(10) }));
    // eviction runs on the retention timer and whenever an append needs room; force one with a tiny budget check
    const before = log.stats().segments;
    await log.close();
    const again = make(dir, { retentionMs: 1000, segmentBytes: 2048, maxBytes: 1 });
    await again.open();
    await again.appendAsync(up(101)).catch(() => {});
    const left = await again.read({ limit: 1000 });
    assert.ok(again.stats().segments < before, `segments ${before} → ${again.stats().segments}`);
    assert.ok(left.every((r) => r.seq > 40), 'only handled segments went');
    assert.ok(left.some((r) => r.seq === 51), 'the first unhandled entry is kept');
  });

  it('fdatasyncs a group only when an append in it is acknowledged; unacknowledged ones within a second, or with the next acknowledged group, or at close', async function () {
    this.timeout(10_000);
    const dir = tmp();
    const log = make(dir, { segmentBytes: 64 * 1024 });
    await log.open();
    // as a burst of QoS 0 publishes: written over several turns, nobody waits for their fdatasync
    const written = (n: number, from: number) =>
      Promise.all(Array.from({ length: n }, (_, i) => new Promise<void>((resolve, reject) => log.append(up(from + i), (err) => (err ? reject(err) : resolve()), false))));
    for (let turn = 0; turn < 5; turn++) {
      await written(40, turn * 40);
      await new Promise((r) => setImmediate(r));
    }
    const s1 = log.stats();
    assert.ok(s1.groups >= 5, `${s1.groups} groups`);
    assert.equal(s1.syncs, 0, 'no fdatasync while nobody waits for one');
    // an acknowledged append: its group is synced before the callback, and that covers the earlier writes
    await log.appendAsync(up(200));
    const s2 = log.stats();
    assert.equal(s2.syncs, 1);
    // unacknowledged appends, then nothing more: one fdatasync within SYNC_EVERY_MS
    await written(30, 201);
    assert.equal(log.stats().syncs, 1);
    const t0 = Date.now();
    while (log.stats().syncs < 2) {
      assert.ok(Date.now() - t0 < SYNC_EVERY_MS + 1500, 'written appends were synced within a second');
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, SYNC_EVERY_MS + 200));
    assert.equal(log.stats().syncs, 2, 'no fdatasync once nothing is left unsynced');
    // enough unacknowledged bytes to roll over to new segments: every record is read back
    await written(3000, 231);
    await written(5, 3231);
    const before = log.stats().syncs;
    await log.close();
    assert.equal(log.stats().syncs, before + 1, 'close syncs what is left');
    const again = make(dir);
    await again.open();
    assert.ok(again.stats().segments > 1, `${again.stats().segments} segments`);
    const all = await again.read({ limit: 10_000 });
    assert.deepEqual(all.map((r) => r.seq), Array.from({ length: 3236 }, (_, i) => i + 1));
  });

  it('never fdatasyncs with fsync os', async () => {
    const log = make(tmp(), { fsync: 'os' });
    await log.open();
    await log.appendAsync(up(1));
    await new Promise<void>((resolve) => log.append(up(2), () => resolve(), false));
    assert.equal(log.stats().syncs, 0);
  });

  for (const fsync of ['always', 'os'] as const) {
    it(`loses no acknowledged append when the process is killed (SIGKILL, fsync ${fsync}), at five points`, async function () {
      this.timeout(60_000);
      for (let k = 0; k < 5; k++) {
        const dir = tmp();
        const child = spawn(process.execPath, [path.join(import.meta.dirname, 'crash-child.ts'), dir, fsync], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        await new Promise((r) => child.stdout.once('data', r)); // appending
        const killAt = 100 + Math.floor(Math.random() * 700);
        await new Promise((r) => setTimeout(r, killAt));
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        const acked = out.split('\n').filter(Boolean).map(Number);
        assert.ok(acked.length > 100, `acked ${acked.length} before the kill at ${killAt} ms`);
        const log = make(dir);
        await log.open();
        const seen = new Set<number>();
        for await (const r of log.unhandled()) seen.add(r.seq);
        const lost = acked.filter((s) => !seen.has(s));
        assert.deepEqual(lost, [], `kill ${k} at ${killAt} ms: ${lost.length} of ${acked.length} acknowledged entries lost`);
        assert.equal(seen.size, [...seen].reduce((a, b) => Math.max(a, b), 0), 'entries are dense from 1');
        await log.close();
      }
    });
  }
});
