import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createUplinkLog, type UplinkLog } from '../../runtime/uplink-log/index.ts';
import { up } from './entries.ts';

// A damaged block of a segment (a disk fault) is not a crash's torn tail: the whole records after it
// are kept, and the entries it took do not hold the handled watermark (runtime/uplink-log/segments.ts).
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'flux-log-damaged-'));

/** Damages the record in the middle of `file`: a flipped byte, 40 zero bytes, or a length field that claims 2 GiB. */
function damage(file: string, how: 'flip' | 'zeros' | 'length'): void {
  const buf = fs.readFileSync(file);
  const at = Math.floor(buf.length / 2);
  if (how === 'flip') buf[at] = buf[at]! ^ 0xff;
  if (how === 'zeros') buf.fill(0, at, at + 40);
  if (how === 'length') buf.writeUInt32LE(0x7fffffff, at);
  fs.writeFileSync(file, buf);
}

const segs = (dir: string) => fs.readdirSync(dir).filter((n) => n.endsWith('.seg')).sort().map((n) => path.join(dir, n));

describe('uplink log: a damaged block', () => {
  const open: UplinkLog[] = [];
  const make = (dir: string, segmentBytes?: number) => {
    const log = createUplinkLog({ dir, fsync: 'always', retentionMs: 3_600_000, maxBytes: 1 << 30, segmentBytes });
    open.push(log);
    return log;
  };
  afterEach(async () => {
    for (const l of open.splice(0)) await l.close();
  });

  const write = async (dir: string, n: number, segmentBytes?: number) => {
    const a = make(dir, segmentBytes);
    await a.open();
    for (let i = 0; i < n; i++) await a.appendAsync(up(i));
    await a.close();
  };

  for (const how of ['flip', 'zeros', 'length'] as const) {
    it(`in the open segment (${how}): keeps the whole records after it, cuts nothing, appends after the last`, async () => {
      const dir = tmp();
      await write(dir, 100);
      const [file] = segs(dir);
      const size = fs.statSync(file!).size;
      damage(file!, how);
      const b = make(dir);
      const opened = await b.open();
      assert.equal(opened.truncatedBytes, 0, 'a damaged block is not a torn tail');
      assert.ok(opened.skippedBytes > 0, 'the damaged bytes are reported');
      assert.equal(fs.statSync(file!).size, size, 'nothing was cut from the segment');
      const seqs = (await b.read({ limit: 1000 })).map((r) => r.seq);
      assert.equal(seqs.length, 99, 'one record lost, every other one kept');
      assert.equal(seqs.at(-1), 100);
      assert.equal(await b.appendAsync(up(100)), 101, 'appends continue after the last whole record');
      let replayed = 0;
      for await (const batch of b.scan({ from: 0, to: Infinity })) replayed += batch.length;
      assert.equal(replayed, 100, 'a replay scan reads past the damaged record too');
    });
  }

  it('in a sealed segment: the entry it took is let go, so the watermark reaches the end and the log stays deletable', async () => {
    const dir = tmp();
    await write(dir, 100, 2048);
    const files = segs(dir);
    assert.ok(files.length > 2, 'several segments');
    damage(files[0]!, 'flip');
    const b = make(dir, 2048);
    assert.equal((await b.open()).unhandled, 100);
    const again: number[] = [];
    for await (const r of b.unhandled()) {
      again.push(r.seq);
      b.handled(r.seq);
    }
    assert.equal(again.length, 99);
    const s = b.stats();
    assert.equal(s.lost, 1);
    assert.equal(s.handledSeq, 100, 'the lost entry does not hold the watermark');
    assert.equal(s.unhandled, 0);
    await b.close();
    const c = make(dir, 2048);
    assert.equal((await c.open()).unhandled, 0, 'nothing is processed again after the next restart');
  });

  it('a torn tail after a damaged block is still cut', async () => {
    const dir = tmp();
    await write(dir, 50);
    const [file] = segs(dir);
    damage(file!, 'flip');
    const whole = fs.statSync(file!).size;
    fs.appendFileSync(file!, Buffer.from([0x40, 0, 0, 0, 1, 2, 3]));
    const b = make(dir);
    const opened = await b.open();
    assert.equal(opened.truncatedBytes, 7);
    assert.equal(fs.statSync(file!).size, whole);
    assert.equal((await b.read({ limit: 100 })).length, 49);
    assert.equal(await b.appendAsync(up(50)), 51);
  });
});
