/** The rules repository (registry.rules), one contract suite on SQLite, MariaDB and PostgreSQL. */
import assert from 'node:assert/strict';
import type { RuleColumns } from '../../runtime/registry/index.ts';
import { describeOnDialects, near, openRegistry, refusal, sortedBy, withoutTimes } from './dialects.ts';

const columns = (name: string, over: Partial<RuleColumns> = {}): RuleColumns => ({
  name,
  enabled: true,
  trigger_script: 'return msg.values.temperature > 45',
  action_type: 'alarm',
  action_config: { level: 'critical', message: 'hot {{values.temperature}}' },
  product_id: null,
  device_id: null,
  env: { limit: 45, labels: ['a', 'b'] },
  ...over,
});

describeOnDialects('rules repository', (suite) => {
  const productId = '7c1f4c1e-5b7a-4d5e-9f43-0a1b2c3d4e5f';


  it('creates a rule at version 1, not quarantined, and reads back every column', async function () {
    const before = new Date();
    const r = await suite.registry.rules.create(columns('hot', { device_id: 'sensor_1' }));
    assert.match(r.id, /^[0-9a-f-]{36}$/);
    assert.equal(r.version, 1);
    assert.equal(r.enabled, true);
    assert.equal(r.quarantined_at, null);
    assert.equal(r.quarantine_reason, null);
    assert.ok(near(r.created_at, before, 2000), r.created_at);
    const back = await suite.registry.rules.find(r.id);
    assert.deepEqual(withoutTimes(back!), withoutTimes(r));
    assert.ok(near(back!.created_at, new Date(r.created_at)), 'created_at as stored (whole seconds on MariaDB)');
    assert.deepEqual(back!.action_config, { level: 'critical', message: 'hot {{values.temperature}}' });
    assert.deepEqual(back!.env, { limit: 45, labels: ['a', 'b'] });
    assert.equal(back!.device_id, 'sensor_1');
  });

  it('answers null for an unknown id and for one that is not a UUID', async function () {
    assert.equal(await suite.registry.rules.find('00000000-0000-4000-8000-000000000000'), null);
    assert.equal(await suite.registry.rules.find('not-a-uuid'), null);
    assert.equal(await suite.registry.rules.find("'; DROP TABLE rules; --"), null);
  });

  it('lists in creation order, filtered by enabled, product and device', async function () {
    // a few ms apart: two rules of one millisecond are ordered by their random id (a CI run saw it)
    await new Promise((r) => setTimeout(r, 5));
    await suite.registry.rules.create(columns('off', { enabled: false, product_id: productId }));
    await new Promise((r) => setTimeout(r, 5));
    await suite.registry.rules.create(columns('for product', { product_id: productId }));
    const all = await suite.registry.rules.list();
    assert.deepEqual(all, sortedBy(all, (r) => [r.created_at, r.id]), 'by created_at, then id');
    // MariaDB's DATETIME keeps whole seconds: rules of one second come by id there
    if (suite.dialect.name.startsWith('MariaDB')) assert.deepEqual(all.map((r) => r.name).sort(), ['for product', 'hot', 'off']);
    else assert.deepEqual(all.map((r) => r.name), ['hot', 'off', 'for product']);
    assert.deepEqual((await suite.registry.rules.list({ enabled: false })).map((r) => r.name), ['off']);
    assert.deepEqual((await suite.registry.rules.list({ enabled: true, product_id: productId })).map((r) => r.name), ['for product']);
    assert.deepEqual((await suite.registry.rules.list({ device_id: 'sensor_1' })).map((r) => r.name), ['hot']);
    assert.deepEqual(await suite.registry.rules.list({ device_id: 'nobody' }), []);
  });

  it('replaces the columns on update, increments the version and ends a quarantine', async function () {
    const [hot] = await suite.registry.rules.list({ device_id: 'sensor_1' });
    assert.equal(await suite.registry.rules.quarantine(hot!.id, 1, new Date(), 'deadline exceeded 3 times'), true);
    const q = await suite.registry.rules.find(hot!.id);
    assert.equal(q!.quarantine_reason, 'deadline exceeded 3 times');
    assert.ok(q!.quarantined_at);
    const u = await suite.registry.rules.update(hot!.id, columns('hotter', { action_type: 'webhook', action_config: { url: 'http://x' }, env: {}, device_id: null }));
    assert.equal(u.version, 2);
    assert.equal(u.name, 'hotter');
    assert.equal(u.action_type, 'webhook');
    assert.deepEqual(u.action_config, { url: 'http://x' });
    assert.equal(u.device_id, null);
    assert.equal(u.quarantined_at, null, 'a save ends the quarantine');
    assert.equal(u.quarantine_reason, null);
    assert.equal(u.created_at, hot!.created_at);
    assert.deepEqual(withoutTimes((await suite.registry.rules.find(hot!.id))!), withoutTimes(u));
  });

  it('quarantines only the version it names (a save that raced it wins)', async function () {
    const [r] = (await suite.registry.rules.list()).filter((x) => x.name === 'hotter');
    assert.equal(await suite.registry.rules.quarantine(r!.id, 1, new Date(), 'stale'), false);
    assert.equal((await suite.registry.rules.find(r!.id))!.quarantined_at, null);
    assert.equal(await suite.registry.rules.quarantine('00000000-0000-4000-8000-000000000000', 1, new Date(), 'gone'), false);
  });

  it('counts every one of concurrent saves from two processes (the version is incremented in the statement)', async function () {
    const r = await suite.registry.rules.create(columns('busy'));
    const other = await openRegistry(suite.db); // a second process on the same database
    try {
      const saves = Array.from({ length: 10 }, (_, i) => (i % 2 ? suite.registry : other).rules.update(r.id, columns(`busy ${i}`)));
      for (const saved of await Promise.all(saves)) {
        assert.ok(saved.version >= 2 && saved.version <= 11, `${saved.version}`);
        assert.match(saved.name, /^busy \d$/);
      }
      const last = await suite.registry.rules.find(r.id);
      assert.equal(last!.version, 11, 'no save was lost: 1 + 10');
    } finally {
      await other.stop();
    }
  });

  it('lists every id with its version', async function () {
    const all = await suite.registry.rules.list();
    const versions = await suite.registry.rules.versions();
    assert.deepEqual(new Map(versions.map((v) => [v.id, v.version])), new Map(all.map((r) => [r.id, r.version])));
    assert.equal(typeof versions[0]!.version, 'number');
  });

  it('deletes a rule; a second delete and an update of it answer 404', async function () {
    const r = await suite.registry.rules.create(columns('short-lived'));
    await suite.registry.rules.delete(r.id);
    assert.equal(await suite.registry.rules.find(r.id), null);
    assert.equal(await refusal(suite.registry.rules.delete(r.id)), '404 not_found');
    assert.equal(await refusal(suite.registry.rules.update(r.id, columns('again'))), '404 not_found');
    assert.equal(await refusal(suite.registry.rules.delete('nope')), '404 not_found');
  });
});
