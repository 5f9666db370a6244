/**
 * GET /api/reports/telemetry.csv: metric names and string values come from devices, and a report is
 * opened in a spreadsheet, which runs a cell starting with `=`, `+`, `-` or `@` as a formula. Such
 * text cells get a leading `'`; numbers, and text that is a plain number, are written as they are.
 */
import assert from 'node:assert/strict';
import { startTestFlux, type TestFlux } from '../users/helpers.ts';
import { TEST_TOKEN } from '../helpers/flux-process.ts';

const T0 = Date.UTC(2026, 0, 1);

describe('the CSV report and spreadsheet formulas', function () {
  this.timeout(60_000);
  let f: TestFlux;
  before(async () => {
    f = await startTestFlux();
    assert.equal((await f.call('POST', '/products', { key: 'csvf', name: 'CSV formulas' })).status, 201);
    const product = (await f.call('GET', '/products/csvf')).body.id as string;
    assert.equal((await f.call('POST', '/devices', { id: 'csvf_1', product_id: 'csvf' })).status, 201);
    const point = (metric: string, i: number, value: number | string | boolean) => ({ device: 'csvf_1', product, metric, ts: T0 + i * 1000, value });
    await f.flux.modules.storage.store.write([
      point('=HYPERLINK("http://evil.example","x")', 0, 1),
      point('note', 1, "=cmd|' /C calc'!A0"),
      point('note', 2, '@SUM(A1:A9)'),
      point('note', 3, '+1+2'),
      point('note', 4, '-2+3'),
      point('note', 5, '-5'),
      point('temp', 6, -5.5),
      point('note', 7, 'plain text'),
    ]);
  });
  after(() => f?.stop());

  it("writes a text cell that a spreadsheet would run with a leading ', and numbers as they are", async () => {
    const res = await fetch(`${f.base}/reports/telemetry.csv?device=csvf_1&from=${T0}&to=${T0 + 60_000}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    assert.equal(res.status, 200);
    const rows = (await res.text()).trim().split('\r\n').slice(1);
    const cells = rows.map((r) => r.slice(r.indexOf('Z,') + 2));
    assert.deepEqual(cells, [
      `"'=HYPERLINK(""http://evil.example"",""x"")",1`,
      `note,'=cmd|' /C calc'!A0`,
      `note,'@SUM(A1:A9)`,
      `note,'+1+2`,
      `note,'-2+3`,
      'note,-5',
      'temp,-5.5',
      'note,plain text',
    ]);
  });

  it('cuts the transfer when the store fails after the first rows, instead of leaving the client waiting', async () => {
    assert.equal((await f.call('POST', '/devices', { id: 'csvf_2', product_id: 'csvf' })).status, 201);
    const store = f.flux.modules.storage.store;
    const range = store.range.bind(store);
    store.range = (q) => (q.device === 'csvf_2' ? Promise.reject(new Error('the store went away')) : range(q));
    try {
      // the 200 may or may not have left before the failure: either way the transfer breaks
      const err = await fetch(`${f.base}/reports/telemetry.csv?product=csvf&from=${T0}&to=${T0 + 60_000}`, { headers: { authorization: `Bearer ${TEST_TOKEN}` }, signal: AbortSignal.timeout(15_000) })
        .then((res) => res.text())
        .then(
          () => undefined,
          (e: Error) => e,
        );
      assert.ok(err, 'the report must not end as if it were whole');
      assert.notEqual(err.name, 'TimeoutError', 'the client waited for a report that would never end');
    } finally {
      store.range = range;
    }
  });
});

