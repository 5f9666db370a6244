/**
 * "The last admin cannot be demoted or deleted" holds for requests that arrive together. The check
 * (count the admins) and the change were separate steps, so two admins demoting each other, or one
 * caller demoting both at once, both passed the check: on PostgreSQL no admin user was left.
 */
import assert from 'node:assert/strict';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestFlux, type TestFlux } from './helpers.ts';

describe('users on PostgreSQL: concurrent changes keep the last admin', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let f: TestFlux;

  before(async function () {
    db = await createTestDatabase('postgres', 'flux_lastadmin');
    f = await startTestFlux({ FLUX_DB_URL: db.url, FLUX_TS_URL: '', FLUX_ADMIN_PASSWORD: 'first-admin-password' });
  });

  after(async function () {
    await f?.stop();
    await db?.drop();
  });

  const admins = async () => ((await f.call('GET', '/users?limit=1000')).body.items as { username: string; role: string }[]).filter((u) => u.role === 'admin').map((u) => u.username);

  it('two demotions at once leave one admin (one answers 409)', async function () {
    assert.equal((await f.call('POST', '/users', { username: 'adm2', password: 'adm2-password-1', role: 'admin' })).status, 201);
    for (let round = 0; round < 10; round++) {
      for (const u of ['admin', 'adm2']) assert.equal((await f.call('PATCH', `/users/${u}`, { role: 'admin' })).status, 200);
      const answers = await Promise.all([f.call('PATCH', '/users/admin', { role: 'viewer' }), f.call('PATCH', '/users/adm2', { role: 'operator' })]);
      assert.equal((await admins()).length, 1, `round ${round}: ${answers.map((a) => a.status).join(', ')}`);
      assert.deepEqual(answers.map((a) => a.status).sort(), [200, 409]);
    }
  });

  it('two deletions at once leave one admin', async function () {
    for (let round = 0; round < 10; round++) {
      const names = [`del${round}a`, `del${round}b`];
      for (const u of ['admin', 'adm2']) await f.call('PATCH', `/users/${u}`, { role: 'viewer' }).catch(() => undefined);
      for (const u of names) assert.equal((await f.call('POST', '/users', { username: u, password: `${u}-password`, role: 'admin' })).status, 201);
      // the first admin and adm2 are viewers now, unless one of them is the last admin (then 409 kept it)
      const left = await admins();
      for (const u of left) if (!names.includes(u)) await f.call('PATCH', `/users/${u}`, { role: 'viewer' });
      assert.deepEqual((await admins()).sort(), names);
      await Promise.all(names.map((u) => f.call('DELETE', `/users/${u}`)));
      assert.equal((await admins()).length, 1, `round ${round}`);
      for (const u of await admins()) await f.call('PATCH', '/users/admin', { role: 'admin' }).then(() => f.call('DELETE', `/users/${u}`));
    }
  });
});
