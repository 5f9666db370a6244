/** The users and tokens repositories (registry.users, registry.tokens), one contract suite on SQLite, MariaDB and PostgreSQL. */
import assert from 'node:assert/strict';
import type { TokenRow } from '../../runtime/registry/index.ts';
import { describeOnDialects, near, refusal, withoutTimes } from './dialects.ts';

const hash = (n: number) => n.toString(16).padStart(64, '0');

describeOnDialects('users and tokens repositories', (suite) => {
  describe('users', function () {
    it('creates users and reads them back by name', async function () {
      const u = await suite.registry.users.create({ username: 'olga', password_hash: 'scrypt$1', role: 'operator' });
      assert.match(u.id, /^[0-9a-f-]{36}$/);
      assert.equal(u.last_login_at, null);
      assert.deepEqual(withoutTimes((await suite.registry.users.find('olga'))!), withoutTimes(u));
      assert.equal(await suite.registry.users.find('nobody'), null);
    });

    it('refuses a second user with the same name as a 409 conflict', async function () {
      assert.equal(await refusal(suite.registry.users.create({ username: 'olga', password_hash: 'x', role: 'viewer' })), '409 conflict');
    });

    it('counts by role and lists by name with totals', async function () {
      for (const [name, role] of [['zed', 'viewer'], ['ana', 'admin'], ['max', 'viewer']] as const) await suite.registry.users.create({ username: name, password_hash: 'h', role });
      assert.equal(await suite.registry.users.count(), 4);
      assert.equal(await suite.registry.users.count('viewer'), 2);
      assert.equal(await suite.registry.users.count('nobody'), 0);
      const page = await suite.registry.users.list({ limit: 2, offset: 1 });
      assert.equal(page.total, 4);
      assert.deepEqual(page.items.map((u) => u.username), ['max', 'olga']);
    });

    it('updates role, password hash and last login; 404 for no such user', async function () {
      const at = new Date();
      const u = await suite.registry.users.update('olga', { role: 'admin', password_hash: 'scrypt$2', last_login_at: at });
      assert.equal(u.role, 'admin');
      assert.equal(u.password_hash, 'scrypt$2');
      assert.ok(near(u.last_login_at, at));
      const back = (await suite.registry.users.find('olga'))!;
      assert.equal(back.password_hash, 'scrypt$2');
      assert.ok(near(back.last_login_at, at));
      assert.equal((await suite.registry.users.update('olga', {})).role, 'admin', 'an empty patch changes nothing');
      assert.equal(await refusal(suite.registry.users.update('ghost', { role: 'viewer' })), '404 not_found');
    });

    it('deletes a user; 404 the second time', async function () {
      await suite.registry.users.delete('zed');
      assert.equal(await suite.registry.users.find('zed'), null);
      assert.equal(await refusal(suite.registry.users.delete('zed')), '404 not_found');
    });
  });

  describe('tokens', function () {
    let personal: TokenRow;
    let session: TokenRow;

    it('creates sessions and personal tokens, found by hash', async function () {
      const expires = new Date(Date.now() + 3_600_000);
      session = await suite.registry.tokens.create({ kind: 'session', token_hash: hash(1), role: 'admin', username: 'olga', expires_at: expires });
      personal = await suite.registry.tokens.create({ kind: 'personal', token_hash: hash(2), role: 'viewer', username: 'olga', name: 'grafana' });
      assert.equal(session.kind, 'session');
      assert.ok(near(session.expires_at, expires));
      assert.equal(personal.expires_at, null);
      assert.equal(personal.name, 'grafana');
      assert.equal(personal.revoked_at, null);
      assert.deepEqual(withoutTimes((await suite.registry.tokens.findByHash(hash(2)))!), withoutTimes(personal));
      assert.equal(await suite.registry.tokens.findByHash(hash(99)), null);
    });

    it('refuses a second token with the same hash as a 409 conflict', async function () {
      assert.equal(await refusal(suite.registry.tokens.create({ kind: 'personal', token_hash: hash(2), role: 'viewer', username: 'max' })), '409 conflict');
    });

    it('finds personal tokens only by id, and counts and lists them newest first', async function () {
      assert.equal((await suite.registry.tokens.findPersonal(personal.id))?.name, 'grafana');
      assert.equal(await suite.registry.tokens.findPersonal(session.id), null, 'a session is not a personal token');
      assert.equal(await suite.registry.tokens.findPersonal('not-a-uuid'), null);
      assert.equal(await suite.registry.tokens.findPersonal('f'.repeat(36)), null, 'the length of a UUID is not enough (PostgreSQL refuses it)');
      for (let i = 3; i < 8; i++) await suite.registry.tokens.create({ kind: 'personal', token_hash: hash(i), role: 'viewer', username: i % 2 ? 'max' : 'olga', name: `t${i}` });
      await suite.registry.tokens.create({ kind: 'personal', token_hash: hash(8), role: 'admin', username: null, name: 'break-glass' });
      assert.equal(await suite.registry.tokens.countPersonal('olga'), 3);
      const all = await suite.registry.tokens.listPersonal({ limit: 100, offset: 0 });
      assert.equal(all.total, 7, 'sessions are not listed');
      const times = all.items.map((t) => new Date(t.created_at).getTime());
      assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');
      const page = await suite.registry.tokens.listPersonal({ username: 'max', limit: 1, offset: 1 });
      assert.equal(page.total, 3);
      assert.equal(page.items.length, 1);
      assert.equal(page.items[0]!.username, 'max');
    });

    it('revokes once, keeping the first time, also when two revoke at once; 404 for a session id', async function () {
      const [a, b] = await Promise.all([suite.registry.tokens.revoke(personal.id, new Date('2030-01-01T00:00:00Z')), suite.registry.tokens.revoke(personal.id, new Date('2031-01-01T00:00:00Z'))]);
      assert.ok(a.revoked_at && a.revoked_at === b.revoked_at, `${a.revoked_at} / ${b.revoked_at}`);
      const again = await suite.registry.tokens.revoke(personal.id, new Date('2032-01-01T00:00:00Z'));
      assert.equal(again.revoked_at, a.revoked_at);
      assert.equal(await refusal(suite.registry.tokens.revoke(session.id, new Date())), '404 not_found');
    });

    it('records a use', async function () {
      const at = new Date();
      await suite.registry.tokens.touch(personal.id, at);
      assert.ok(near((await suite.registry.tokens.findPersonal(personal.id))!.last_used_at, at));
    });

    it('ends one session, a user\'s sessions, or all their tokens', async function () {
      const other = await suite.registry.tokens.create({ kind: 'session', token_hash: hash(20), role: 'admin', username: 'olga', expires_at: new Date(Date.now() + 60_000) });
      await suite.registry.tokens.endSession(session.id);
      assert.equal(await suite.registry.tokens.findByHash(hash(1)), null);
      await suite.registry.tokens.endSession(personal.id);
      assert.ok(await suite.registry.tokens.findByHash(hash(2)), 'endSession leaves personal tokens alone');
      await suite.registry.tokens.endSession('not-a-uuid');
      await suite.registry.tokens.endSessionsOf('olga');
      assert.equal(await suite.registry.tokens.findByHash(other.token_hash), null);
      assert.equal(await suite.registry.tokens.countPersonal('olga'), 3, 'personal tokens stay');
      await suite.registry.tokens.deleteOf('olga');
      assert.equal(await suite.registry.tokens.countPersonal('olga'), 0);
      assert.equal(await suite.registry.tokens.countPersonal('max'), 3, 'other users keep theirs');
    });

    it('prunes the sessions that expired, nothing else', async function () {
      await suite.registry.tokens.create({ kind: 'session', token_hash: hash(30), role: 'viewer', username: 'max', expires_at: new Date(Date.now() - 60_000) });
      await suite.registry.tokens.create({ kind: 'session', token_hash: hash(31), role: 'viewer', username: 'max', expires_at: new Date(Date.now() + 60_000) });
      assert.equal(await suite.registry.tokens.pruneSessions(new Date()), 1);
      assert.equal(await suite.registry.tokens.findByHash(hash(30)), null);
      assert.ok(await suite.registry.tokens.findByHash(hash(31)));
      assert.equal(await suite.registry.tokens.countPersonal('max'), 3);
    });
  });
});
