/**
 * GET /api/devices/{id}/raw pages by bytes as well as by count. A device may send uplinks of
 * 256 KiB; with `limit=1000` one viewer's request answered 525 MB (hex), held ~1.9 GB and the main
 * thread for seconds, and three at once reached 4 GB with /api/health unanswered for over 10 s.
 */
import assert from 'node:assert/strict';
import { startInstance, type Instance } from '../security/helpers.ts';

const SIZE = 256 * 1024;
const COUNT = 40; // 10 MiB in all: more than one page's bytes

interface RawPage {
  items: { seq: number; bytes: number; payload: string }[];
  next: number | null;
  has_more: boolean;
}

describe('raw uplinks: a page is bounded by its bytes', function () {
  this.timeout(120_000);
  let flux: Instance;

  before(async () => {
    flux = await startInstance();
    assert.equal((await flux.api('POST', '/api/products', { key: 'rawb', name: 'Raw bytes' })).status, 201);
    const secret = (await flux.api('POST', '/api/devices', { id: 'rawb_1', product_id: 'rawb' })).body.secret as string;
    for (let i = 0; i < COUNT; i++) {
      const res = await fetch(`http://127.0.0.1:${flux.http}/api/devices/rawb_1/uplink`, { method: 'POST', headers: { 'x-device-secret': secret, 'content-type': 'application/octet-stream' }, body: Buffer.alloc(SIZE, i) });
      assert.equal(res.status, 202, await res.text());
    }
  });
  after(() => flux?.stop());

  const page = async (query: string): Promise<RawPage> => {
    const r = await flux.api('GET', `/api/devices/rawb_1/raw?${query.includes('limit=') ? '' : 'limit=1000&'}${query}`);
    assert.equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
    return r.body as RawPage;
  };

  for (const order of ['asc', 'desc'] as const) {
    it(`answers at most about 8 MiB of payload a page, and every uplink once across the pages (${order})`, async () => {
      const seen: number[] = [];
      let cursor: number | null = null;
      for (let pages = 0; pages < COUNT; pages++) {
        const p = await page(`order=${order}${cursor === null ? '' : `&${order === 'asc' ? 'after' : 'before'}=${cursor}`}`);
        const bytes = p.items.reduce((n, it) => n + it.bytes, 0);
        assert.ok(bytes <= 8 * 1024 * 1024 + SIZE, `a page of ${bytes} bytes (${p.items.length} uplinks)`);
        seen.push(...p.items.map((it) => it.seq));
        if (!p.has_more) break;
        cursor = p.next;
      }
      assert.equal(seen.length, COUNT);
      assert.equal(new Set(seen).size, COUNT);
      const sorted = [...seen].sort((a, b) => (order === 'asc' ? a - b : b - a));
      assert.deepEqual(seen, sorted);
    });
  }

  it('still answers small uplinks by count', async () => {
    const p = await page('limit=3');
    assert.equal(p.items.length, 3);
    assert.equal(p.has_more, true);
  });
});
