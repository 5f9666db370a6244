/** Users, tokens and the audit log on MariaDB and PostgreSQL (migration 005 and the queries), not only SQLite. */
import assert from 'node:assert/strict';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { until } from '../helpers/wait.ts';
import { startTestFlux, type TestFlux } from './helpers.ts';

for (const kind of ['mysql', 'postgres'] as const) {
  describe(`users on ${kind === 'mysql' ? 'MariaDB' : 'PostgreSQL'}`, function () {
    this.timeout(60_000);
    let db: TestDatabase;
    let f: TestFlux;

    before(async function () {
      db = await createTestDatabase(kind, 'flux_users');
      f = await startTestFlux({ FLUX_DB_URL: db.url, FLUX_TS_URL: '', FLUX_ADMIN_PASSWORD: 'db-admin-password' });
    });

    after(async function () {
      await f?.stop();
      await db?.drop();
    });

    it('logs in, makes users and tokens, audits, and keeps alarm notes', async function () {
      const admin = (await f.call('POST', '/auth/login', { username: 'admin', password: 'db-admin-password' }, null)).body.token;
      assert.ok(admin);
      const op = await f.userToken('dora', 'operator');
      assert.equal((await f.call('POST', '/users', { username: 'dora', password: 'other-password', role: 'viewer' }, admin)).status, 409);
      const tok = await f.call('POST', '/tokens', { name: 'ci', role: 'viewer' }, op);
      assert.equal(tok.status, 201);
      assert.deepEqual((await f.call('GET', '/auth/me', undefined, tok.body.token)).body, { username: 'dora', role: 'viewer', via: 'token' });
      assert.equal((await f.call('DELETE', `/tokens/${tok.body.id}`, undefined, op)).status, 204);
      assert.equal((await f.call('GET', '/auth/me', undefined, tok.body.token)).status, 401);
      assert.equal((await f.call('POST', '/products', { key: 'db_p', name: 'x' }, op)).status, 201);
      const audit = await until('the audit rows', async () => {
        const r = await f.call('GET', '/audit?username=dora', undefined, admin);
        return r.body.total >= 3 ? r.body.items : undefined;
      });
      assert.ok(audit.some((a: any) => a.action === 'POST /products' && a.status === 201));
      const alarm = await f.flux.modules.alarms.raise({ level: 'critical', message: 'db alarm' });
      const acked = await f.call('POST', `/alarms/${alarm.id}/ack`, { note: '检查阀门 / valve checked' }, op);
      assert.equal(acked.body.acked_by, 'dora');
      assert.equal((await f.call('GET', `/alarms/${alarm.id}`, undefined, op)).body.ack_note, '检查阀门 / valve checked');
      assert.equal((await f.call('PATCH', '/users/dora', { role: 'viewer' }, admin)).status, 200);
      assert.equal((await f.call('POST', '/products', { key: 'db_q', name: 'x' }, op)).status, 403);
    });
  });
}
