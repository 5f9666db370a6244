/** One registry suite, run against SQLite (node:sqlite), MariaDB (mysql2) and PostgreSQL (pg) — real servers. */
import assert from 'node:assert/strict';
import { createRegistry } from '../../runtime/registry/index.ts';
import { rawSql } from '../helpers/databases.ts';
import { MIGRATIONS } from '../../runtime/registry/migrations/index.ts';
import { describeOnDialects, refusal, silent } from './dialects.ts';

const thingModel = { properties: [{ id: 'temperature', type: 'float' as const, unit: '°C' }], events: [{ id: 'overheat' }], commands: [{ id: 'TurnOn' }] };

describeOnDialects('registry', (suite) => {
  it('runs its migrations once and again without error on a second start', async function () {
    const again = createRegistry({ db: suite.db, log: silent });
    await again.start();
    assert.deepEqual((await again.migrations()).sort(), MIGRATIONS.map((m) => m.name).sort(), 'each migration recorded exactly once');
    const sql = await rawSql(suite.db);
    const rows = await sql.query<{ name: string }>('SELECT name FROM flux_migrations').finally(() => sql.close());
    assert.equal(rows.length, MIGRATIONS.length, 'as the table has them');
    await again.stop();
  });

  it('creates a product with a thing model and reads it back by id and by key', async function () {
    const p = await suite.registry.products.create({ key: 'modbus', name: 'Modbus sensor', protocol_plugin_id: 'modbus', metadata: thingModel, transport: { tcp: { port: 9000 } } });
    assert.match(p.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual((await suite.registry.products.get(p.id)).metadata, thingModel);
    const byKey = await suite.registry.products.get('modbus');
    assert.equal(byKey.id, p.id);
    assert.deepEqual(byKey.transport, { tcp: { port: 9000 } });
    assert.equal(byKey.protocol_plugin_id, 'modbus');
  });

  it('refuses a second product with the same key as a 409 conflict', async function () {
    assert.equal(await refusal(suite.registry.products.create({ key: 'modbus', name: 'again' })), '409 conflict');
  });

  it('creates a device with a chosen id and returns a secret that authenticates', async function () {
    const { device, secret } = await suite.registry.devices.create({ id: 'sensor_1', product_id: 'modbus', name: 'Boiler' });
    assert.equal(device.id, 'sensor_1');
    assert.equal(device.status, 'offline');
    assert.ok(secret.length >= 16);
    assert.equal((device as unknown as Record<string, unknown>).secret_hash, undefined, 'the hash never leaves the registry');
    const who = await suite.registry.devices.authenticate('sensor_1', secret);
    assert.equal(who?.device.id, 'sensor_1');
    assert.equal(who?.product.key, 'modbus');
    assert.equal(await suite.registry.devices.authenticate('sensor_1', secret + 'x'), null);
    assert.equal(await suite.registry.devices.authenticate('nobody', secret), null);
  });

  it('generates an id when none is given and honours a user-supplied secret', async function () {
    const { device, secret } = await suite.registry.devices.create({ product_id: 'modbus', secret: 'a-very-long-user-secret' });
    assert.match(device.id, /^dev_[0-9a-f]{16}$/);
    assert.equal(secret, 'a-very-long-user-secret');
    assert.ok(await suite.registry.devices.authenticate(device.id, secret));
    await suite.registry.devices.delete(device.id);
  });

  it('refuses a duplicate device id and a device of an unknown product', async function () {
    assert.equal(await refusal(suite.registry.devices.create({ id: 'sensor_1', product_id: 'modbus' })), '409 conflict');
    assert.equal(await refusal(suite.registry.devices.create({ id: 'sensor_9', product_id: 'no-such-product' })), '404 not_found');
  });

  it('rotates a secret so that only the new one authenticates', async function () {
    const old = await suite.registry.devices.create({ id: 'sensor_2', product_id: 'modbus' });
    const rotated = await suite.registry.devices.rotateSecret('sensor_2');
    assert.notEqual(rotated.secret, old.secret);
    assert.equal(await suite.registry.devices.authenticate('sensor_2', old.secret), null);
    assert.ok(await suite.registry.devices.authenticate('sensor_2', rotated.secret));
  });

  it('lists devices filtered by product key and status, paginated', async function () {
    const other = await suite.registry.products.create({ key: 'other', name: 'Other' });
    await suite.registry.devices.create({ id: 'other_1', product_id: other.id });
    const page1 = await suite.registry.devices.list({ product_id: 'modbus', limit: 1, offset: 0 });
    assert.equal(page1.total, 2);
    assert.deepEqual(page1.items.map((d) => d.id), ['sensor_1']);
    const page2 = await suite.registry.devices.list({ product_id: 'modbus', limit: 1, offset: 1 });
    assert.deepEqual(page2.items.map((d) => d.id), ['sensor_2']);
    await suite.registry.devices.setStatus('sensor_2', 'online');
    const online = await suite.registry.devices.list({ status: 'online' });
    assert.deepEqual(online.items.map((d) => d.id), ['sensor_2']);
    assert.ok(online.items[0]!.last_online, 'last_online is set when the device comes online');
    const search = await suite.registry.devices.list({ q: 'other' });
    assert.deepEqual(search.items.map((d) => d.id), ['other_1']);
  });

  it('lists and groups devices exactly as it reads one (raw rows: JSON columns, booleans, dates, no secret)', async function () {
    const { registry } = suite;
    const product = await registry.products.create({ key: 'rawrows', name: 'Raw rows' });
    await registry.devices.create({ id: 'raw_a_gw', product_id: product.id, is_gateway: true, tags: { site: 'north', n: [1, 2] }, transport: { modbus: { host: '10.0.0.5', port: 502, unit: 3 } } });
    await registry.devices.create({ id: 'raw_b_child', product_id: product.id, gateway_id: 'raw_a_gw', enabled: false });
    await registry.devices.setStatus('raw_a_gw', 'online');
    // ids in creation order also sort by id: MariaDB's DATETIME keeps whole seconds, and the list orders by (created_at, id)
    const one = [await registry.devices.get('raw_a_gw'), await registry.devices.get('raw_b_child')];
    const listed = (await registry.devices.list({ product_id: 'rawrows' })).items;
    assert.deepEqual(listed, one);
    assert.deepEqual(Object.keys(listed[0]!).sort(), Object.keys(one[0]!).sort());
    assert.ok(!('secret_hash' in listed[0]!), 'the secret hash stays in the registry');
    assert.equal(typeof listed[0]!.is_gateway, 'boolean');
    assert.equal(listed[1]!.enabled, false);
    assert.deepEqual((await registry.devices.byProducts([product.id], 10)).get(product.id), one);
  });

  it('writes many status changes in one call, each device getting its own status', async function () {
    const at = new Date();
    await suite.registry.devices.setStatuses([
      { id: 'sensor_1', status: 'online', at },
      { id: 'sensor_2', status: 'offline', at },
    ]);
    assert.equal((await suite.registry.devices.get('sensor_1')).status, 'online');
    assert.equal((await suite.registry.devices.get('sensor_2')).status, 'offline');
    // MariaDB's DATETIME keeps whole seconds
    assert.ok(Math.abs(new Date((await suite.registry.devices.get('sensor_1')).last_online!).getTime() - at.getTime()) < 1000, 'last_online is the change time');
    await suite.registry.devices.setStatuses([{ id: 'sensor_2', status: 'online', at }]);
  });

  it('serves an expired cached identity at once while one background read refreshes it', async function () {
    const dbUrl = suite.db;
    const quick = createRegistry({ db: dbUrl, log: silent, identityTtlMs: 40 });
    const elsewhere = async (newName: string) => {
      const sql = await rawSql(dbUrl);
      await sql.query('UPDATE devices SET name = ? WHERE id = ?', [newName, 'sensor_2']).finally(() => sql.close());
    };
    await quick.start();
    const name = (await quick.devices.get('sensor_2')).name;
    try {
      const first = await quick.devices.identity('sensor_2');
      assert.ok(first);
      assert.equal(quick.devices.cachedIdentity('sensor_2'), first, 'a fresh entry is served from the cache');
      // changed behind the cache's back (another process): only the TTL can notice
      await elsewhere('renamed elsewhere');
      await new Promise((r) => setTimeout(r, 60));
      assert.equal(quick.devices.cachedIdentity('sensor_2'), first, 'past its TTL the old entry is still served, no waiting');
      let now: ReturnType<typeof quick.devices.cachedIdentity>;
      for (let i = 0; i < 50 && (now = quick.devices.cachedIdentity('sensor_2'))?.device.name !== 'renamed elsewhere'; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(now?.device.name, 'renamed elsewhere', 'the background read replaced it');
      assert.equal(quick.devices.cachedIdentity('no_such_device'), undefined, 'nothing cached: the caller asks identity()');
    } finally {
      await elsewhere(name);
      await quick.stop();
    }
  });

  it('updates a device and keeps a disabled device from authenticating as enabled', async function () {
    const d = await suite.registry.devices.update('sensor_1', { enabled: false, name: 'Boiler 1', tags: { floor: 2 } });
    assert.equal(d.enabled, false);
    assert.deepEqual(d.tags, { floor: 2 });
    const who = await suite.registry.devices.identity('sensor_1');
    assert.equal(who?.device.enabled, false);
  });

  it('refuses to delete a product that still has devices, and deletes it once they are gone', async function () {
    const p = await suite.registry.products.get('other');
    assert.equal(await refusal(suite.registry.products.delete(p.id)), '409 conflict');
    assert.ok(await suite.registry.products.get('other'), 'nothing was deleted');
    await suite.registry.devices.delete('other_1');
    await suite.registry.products.delete(p.id);
    assert.equal(await suite.registry.products.find('other'), null);
  });

  it('answers 404 for unknown ids', async function () {
    assert.equal(await refusal(suite.registry.devices.get('ghost')), '404 not_found');
    assert.equal(await refusal(suite.registry.products.get('00000000-0000-4000-8000-000000000000')), '404 not_found');
    assert.equal(await refusal(suite.registry.devices.update('ghost', { name: 'x' })), '404 not_found');
  });

  it('reports its health', async function () {
    const h = await suite.registry.health();
    assert.equal(h.ok, true);
  });
});
