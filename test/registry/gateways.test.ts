/** Gateways and children in the registry, against SQLite, MariaDB and PostgreSQL (real servers): migration 004, checks, cache. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { createRegistry, type Registry } from '../../runtime/registry/index.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { FluxError } from '../../runtime/errors/index.ts';
import { parseDbUrl } from '../../settings.ts';
import { createTestDatabase, rawSql } from '../helpers/databases.ts';
import { tempDir } from '../helpers/flux-process.ts';

const log = createLogger({ level: 'silent' });

const dialects: { name: string; setup(): Promise<{ url: string; drop(): Promise<void> }> }[] = [
  { name: 'SQLite (node:sqlite)', setup: async () => ({ url: `sqlite:${path.join(tempDir(), 'flux.db')}`, drop: async () => {} }) },
  { name: 'MariaDB (mysql2)', setup: () => createTestDatabase('mysql') },
  { name: 'PostgreSQL (pg)', setup: () => createTestDatabase('postgres') },
];

async function refusal(p: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof FluxError, `expected a FluxError, got ${err}`);
    return { status: err.status, message: err.message };
  }
  assert.fail('expected the call to be refused');
}

/** A database at the schema before migration 004, with one device in it (written with its own driver). */
async function oldSchema(url: string): Promise<void> {
  const db = parseDbUrl('FLUX_DB_URL', url, tempDir(), 'flux.db', false);
  const before = createRegistry({ db, log, migrateUntil: '003-rules' });
  await before.start();
  assert.deepEqual(await before.migrations(), ['001-initial', '003-rules']);
  await before.stop();
  const sql = await rawSql(db);
  try {
    const at = '2026-01-01 00:00:00';
    const key = db.dialect === 'mysql' ? '`key`' : 'key'; // a reserved word in MySQL only
    await sql.query(`INSERT INTO products (id, ${key}, name, metadata, transport, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`, [
      '00000000-0000-4000-8000-000000000001', 'old', 'old', '{}', '{}', at, at,
    ]);
    await sql.query('INSERT INTO devices (id, product_id, name, secret_hash, enabled, status, tags, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)', [
      'old_1', '00000000-0000-4000-8000-000000000001', 'old', 'x', 1, 'offline', '{}', at, at,
    ]);
  } finally {
    await sql.close();
  }
}

for (const d of dialects) {
  describe(`registry gateways on ${d.name}`, function () {
    let db: { url: string; drop(): Promise<void> };
    let registry: Registry;
    /** SELECT statements the registry sent */
    let reads = 0;

    before(async function () {
      db = await d.setup();
      await oldSchema(db.url);
      registry = createRegistry({ db: parseDbUrl('FLUX_DB_URL', db.url, tempDir(), 'flux.db', false), log, onQuery: (sql) => void (/\bSELECT\b/i.test(sql) && reads++) });
      await registry.start();
      await registry.products.create({ key: 'gw', name: 'Gateway' });
      await registry.products.create({ key: 'unit', name: 'Modbus unit' });
    });

    after(async function () {
      await registry?.stop();
      await db?.drop();
    });

    it('migrates a database with devices: existing devices are not gateways and have no gateway', async function () {
      const old = await registry.devices.get('old_1');
      assert.equal(old.is_gateway, false);
      assert.equal(old.gateway_id, null);
      const p = await registry.products.get('old');
      assert.equal(p.auto_register_children, false);
      assert.equal(p.child_product_id, null);
    });

    it('creates a gateway and children attached to it, listed by gateway_id and as its children', async function () {
      const gw = (await registry.devices.create({ id: 'gw_1', product_id: 'gw', is_gateway: true })).device;
      assert.equal(gw.is_gateway, true);
      assert.equal(gw.gateway_id, null);
      const c1 = (await registry.devices.create({ id: 'unit_1', product_id: 'unit', gateway_id: 'gw_1' })).device;
      assert.equal(c1.gateway_id, 'gw_1');
      assert.equal(c1.is_gateway, false);
      await registry.devices.create({ id: 'unit_2', product_id: 'unit' });
      await registry.devices.update('unit_2', { gateway_id: 'gw_1' });
      const children = await registry.devices.children('gw_1');
      assert.deepEqual(children.items.map((x) => x.id).sort(), ['unit_1', 'unit_2']);
      assert.equal((await registry.devices.list({ gateway_id: 'gw_1' })).total, 2);
      assert.deepEqual((await registry.devices.list({ is_gateway: true })).items.map((x) => x.id), ['gw_1']);
      assert.deepEqual([...(await registry.devices.childIds('gw_1'))].sort(), ['unit_1', 'unit_2']);
    });

    it('refuses a missing gateway (404), itself (400), a device that is not a gateway (409) and a cycle (409), naming the id', async function () {
      let r = await refusal(registry.devices.create({ id: 'unit_9', product_id: 'unit', gateway_id: 'nope' }));
      assert.equal(r.status, 404);
      assert.match(r.message, /'nope'/);
      r = await refusal(registry.devices.update('gw_1', { gateway_id: 'gw_1' }));
      assert.equal(r.status, 400);
      assert.match(r.message, /'gw_1'/);
      r = await refusal(registry.devices.update('unit_2', { gateway_id: 'unit_1' }));
      assert.equal(r.status, 409);
      assert.match(r.message, /'unit_1' is not a gateway/);
      await registry.devices.create({ id: 'gw_2', product_id: 'gw', is_gateway: true, gateway_id: 'gw_1' });
      r = await refusal(registry.devices.update('gw_1', { gateway_id: 'gw_2' }));
      assert.equal(r.status, 409);
      assert.match(r.message, /cycle/);
      assert.equal((await registry.devices.get('gw_1')).gateway_id, null, 'a refused change leaves the device as it was');
      assert.equal((await registry.devices.find('unit_9')), null, 'a refused creation creates nothing');
    });

    it('refuses two attaches that would make a cycle together', async function () {
      await registry.devices.create({ id: 'gw_a', product_id: 'gw', is_gateway: true });
      await registry.devices.create({ id: 'gw_b', product_id: 'gw', is_gateway: true });
      const results = await Promise.allSettled([registry.devices.update('gw_a', { gateway_id: 'gw_b' }), registry.devices.update('gw_b', { gateway_id: 'gw_a' })]);
      assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1, 'exactly one of the two attaches succeeds');
    });

    it('keeps a gateway with children from being deleted or unmarked, and detaches a child', async function () {
      let r = await refusal(registry.devices.delete('gw_1'));
      assert.equal(r.status, 409);
      assert.match(r.message, /gateway of 3 device/);
      r = await refusal(registry.devices.update('gw_1', { is_gateway: false }));
      assert.equal(r.status, 409);
      const before = await registry.devices.childIds('gw_1');
      assert.ok(before.has('unit_2'));
      const detached = await registry.devices.update('unit_2', { gateway_id: null });
      assert.equal(detached.gateway_id, null);
      assert.equal((await registry.devices.childIds('gw_1')).has('unit_2'), false, 'the cached children are dropped on detach');
      assert.equal(registry.devices.cachedChildIds('gw_1')?.has('unit_2') ?? false, false);
    });

    it('answers the cached child ids without a database read', async function () {
      await registry.devices.childIds('gw_1');
      const before = reads;
      for (let i = 0; i < 100; i++) assert.ok(registry.devices.cachedChildIds('gw_1')?.has('unit_1'));
      await registry.devices.childIds('gw_1');
      assert.equal(reads - before, 0);
      registry.invalidate();
      await registry.devices.childIds('gw_1');
      assert.equal(reads - before, 1, 'the counter sees a read once the cache is dropped');
    });

    it('keeps auto_register_children and child_product_id on products', async function () {
      const p = await registry.products.create({ key: 'gw_auto', name: 'Auto gateway', auto_register_children: true, child_product_id: 'unit' });
      assert.equal(p.auto_register_children, true);
      assert.equal(p.child_product_id, (await registry.products.get('unit')).id);
      const r = await refusal(registry.products.update(p.id, { child_product_id: 'no-such-product' }));
      assert.equal(r.status, 404);
    });
  });
}
