/**
 * List filters naming a product that does not exist, on PostgreSQL: `product_id` is a UUID column
 * there, and a filter value that is neither a product's id nor its key went into the WHERE clause
 * as it came, so PostgreSQL refused the query (invalid input syntax for type uuid) and the API
 * answered 500 instead of an empty list.
 */
import assert from 'node:assert/strict';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestFlux, type TestFlux } from '../users/helpers.ts';

describe('list filters on PostgreSQL: an unknown product answers an empty list', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let f: TestFlux;

  before(async function () {
    db = await createTestDatabase('postgres', 'flux_filters');
    f = await startTestFlux({ FLUX_DB_URL: db.url, FLUX_TS_URL: '' });
    assert.equal((await f.call('POST', '/products', { key: 'pf', name: 'Filters' })).status, 201);
    assert.equal((await f.call('POST', '/devices', { id: 'pf_1', product_id: 'pf' })).status, 201);
  });

  after(async function () {
    await f?.stop();
    await db?.drop();
  });

  it('GET /api/devices?product_id=<no such product> answers 200 with no items, never 500', async function () {
    for (const value of ['nope', 'not-a-uuid-0000', "x' OR '1'='1"]) {
      const r = await f.call('GET', `/devices?product_id=${encodeURIComponent(value)}`);
      assert.equal(r.status, 200, `${value}: ${JSON.stringify(r.body)}`);
      assert.deepEqual([r.body.items, r.body.total], [[], 0]);
    }
    const uuid = await f.call('GET', '/devices?product_id=00000000-0000-4000-8000-000000000000');
    assert.deepEqual([uuid.status, uuid.body.total], [200, 0]);
  });

  it('still filters by a product key and by its id', async function () {
    const byKey = await f.call('GET', '/devices?product_id=pf');
    assert.deepEqual(byKey.body.items.map((d: { id: string }) => d.id), ['pf_1']);
    const id = (await f.call('GET', '/products/pf')).body.id as string;
    const byId = await f.call('GET', `/devices?product_id=${id}`);
    assert.deepEqual(byId.body.items.map((d: { id: string }) => d.id), ['pf_1']);
  });
});
