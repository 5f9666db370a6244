/** Gateways and children in the registry, against SQLite, MariaDB and PostgreSQL (real servers): migration 004, checks, cache. */
import assert from 'node:assert/strict';
import { createRegistry, type Registry } from '../../runtime/registry/index.ts';
import { FluxError } from '../../runtime/errors/index.ts';
import type { DbUrl } from '../../settings.ts';
import { rawSql } from '../helpers/databases.ts';
import { describeOnDialects, silent } from './dialects.ts';

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
async function oldSchema(db: DbUrl): Promise<void> {
  const before = createRegistry({ db, log: silent, migrateUntil: '003-rules' });
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

/** SELECT statements the suite's registry sent (the suites of the dialects run one after another) */
let reads = 0;

/** A registry on a database migrated from before 004 (oldSchema), with a gateway and a unit product. */
async function openMigrated(db: DbUrl): Promise<Registry> {
  await oldSchema(db);
  reads = 0;
  const registry = createRegistry({ db, log: silent, onQuery: (sql) => void (/\bSELECT\b/i.test(sql) && reads++) });
  await registry.start();
  await registry.products.create({ key: 'gw', name: 'Gateway' });
  await registry.products.create({ key: 'unit', name: 'Modbus unit' });
  return registry;
}

describeOnDialects('registry gateways', (suite) => {
  it('migrates a database with devices: existing devices are not gateways and have no gateway', async function () {
    const old = await suite.registry.devices.get('old_1');
    assert.equal(old.is_gateway, false);
    assert.equal(old.gateway_id, null);
    const p = await suite.registry.products.get('old');
    assert.equal(p.auto_register_children, false);
    assert.equal(p.child_product_id, null);
  });

  it('creates a gateway and children attached to it, listed by gateway_id and as its children', async function () {
    const gw = (await suite.registry.devices.create({ id: 'gw_1', product_id: 'gw', is_gateway: true })).device;
    assert.equal(gw.is_gateway, true);
    assert.equal(gw.gateway_id, null);
    const c1 = (await suite.registry.devices.create({ id: 'unit_1', product_id: 'unit', gateway_id: 'gw_1' })).device;
    assert.equal(c1.gateway_id, 'gw_1');
    assert.equal(c1.is_gateway, false);
    await suite.registry.devices.create({ id: 'unit_2', product_id: 'unit' });
    await suite.registry.devices.update('unit_2', { gateway_id: 'gw_1' });
    const children = await suite.registry.devices.children('gw_1');
    assert.deepEqual(children.items.map((x) => x.id).sort(), ['unit_1', 'unit_2']);
    assert.equal((await suite.registry.devices.list({ gateway_id: 'gw_1' })).total, 2);
    assert.deepEqual((await suite.registry.devices.list({ is_gateway: true })).items.map((x) => x.id), ['gw_1']);
    assert.deepEqual([...(await suite.registry.devices.childIds('gw_1'))].sort(), ['unit_1', 'unit_2']);
  });

  it('refuses a missing gateway (404), itself (400), a device that is not a gateway (409) and a cycle (409), naming the id', async function () {
    let r = await refusal(suite.registry.devices.create({ id: 'unit_9', product_id: 'unit', gateway_id: 'nope' }));
    assert.equal(r.status, 404);
    assert.match(r.message, /'nope'/);
    r = await refusal(suite.registry.devices.update('gw_1', { gateway_id: 'gw_1' }));
    assert.equal(r.status, 400);
    assert.match(r.message, /'gw_1'/);
    r = await refusal(suite.registry.devices.update('unit_2', { gateway_id: 'unit_1' }));
    assert.equal(r.status, 409);
    assert.match(r.message, /'unit_1' is not a gateway/);
    await suite.registry.devices.create({ id: 'gw_2', product_id: 'gw', is_gateway: true, gateway_id: 'gw_1' });
    r = await refusal(suite.registry.devices.update('gw_1', { gateway_id: 'gw_2' }));
    assert.equal(r.status, 409);
    assert.match(r.message, /cycle/);
    assert.equal((await suite.registry.devices.get('gw_1')).gateway_id, null, 'a refused change leaves the device as it was');
    assert.equal((await suite.registry.devices.find('unit_9')), null, 'a refused creation creates nothing');
  });

  it('refuses two attaches that would make a cycle together', async function () {
    await suite.registry.devices.create({ id: 'gw_a', product_id: 'gw', is_gateway: true });
    await suite.registry.devices.create({ id: 'gw_b', product_id: 'gw', is_gateway: true });
    const results = await Promise.allSettled([suite.registry.devices.update('gw_a', { gateway_id: 'gw_b' }), suite.registry.devices.update('gw_b', { gateway_id: 'gw_a' })]);
    assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1, 'exactly one of the two attaches succeeds');
  });

  it('keeps a gateway with children from being deleted or unmarked, and detaches a child', async function () {
    let r = await refusal(suite.registry.devices.delete('gw_1'));
    assert.equal(r.status, 409);
    assert.match(r.message, /gateway of 3 device/);
    r = await refusal(suite.registry.devices.update('gw_1', { is_gateway: false }));
    assert.equal(r.status, 409);
    const before = await suite.registry.devices.childIds('gw_1');
    assert.ok(before.has('unit_2'));
    const detached = await suite.registry.devices.update('unit_2', { gateway_id: null });
    assert.equal(detached.gateway_id, null);
    assert.equal((await suite.registry.devices.childIds('gw_1')).has('unit_2'), false, 'the cached children are dropped on detach');
    assert.equal(suite.registry.devices.cachedChildIds('gw_1')?.has('unit_2') ?? false, false);
  });

  it('answers the cached child ids without a database read', async function () {
    await suite.registry.devices.childIds('gw_1');
    const before = reads;
    for (let i = 0; i < 100; i++) assert.ok(suite.registry.devices.cachedChildIds('gw_1')?.has('unit_1'));
    await suite.registry.devices.childIds('gw_1');
    assert.equal(reads - before, 0);
    suite.registry.invalidate();
    await suite.registry.devices.childIds('gw_1');
    assert.equal(reads - before, 1, 'the counter sees a read once the cache is dropped');
  });

  it('keeps auto_register_children and child_product_id on products', async function () {
    const p = await suite.registry.products.create({ key: 'gw_auto', name: 'Auto gateway', auto_register_children: true, child_product_id: 'unit' });
    assert.equal(p.auto_register_children, true);
    assert.equal(p.child_product_id, (await suite.registry.products.get('unit')).id);
    const r = await refusal(suite.registry.products.update(p.id, { child_product_id: 'no-such-product' }));
    assert.equal(r.status, 404);
  });
}, { open: openMigrated });
