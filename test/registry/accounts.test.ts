/** The users and tokens repositories (registry.users, registry.tokens), one contract suite on SQLite, MariaDB and PostgreSQL. */
import assert from 'node:assert/strict';
import type { DbUrl } from '../../settings.ts';
import type { Registry, TokenRow } from '../../runtime/registry/index.ts';
import { DIALECTS, near, openRegistry, refusal, withoutTimes } from './dialects.ts';

const hash = (n: number) => n.toString(16).padStart(64, '0');

for (const d of DIALECTS) {
  describe(`users and tokens repositories on ${d.name}`, function () {
    this.timeout(30_000);
    let db: { db: DbUrl; drop(): Promise<void> };
    let registry: Registry;

    before(async function () {
      db = await d.setup();
      registry = await openRegistry(db.db);
    });

    after(async function () {
      await registry?.stop();
      await db?.drop();
    });

    describe('users', function () {
      it('creates users and reads them back by name', async function () {
        const u = await registry.users.create({ username: 'olga', password_hash: 'scrypt$1', role: 'operator' });
        assert.match(u.id, /^[0-9a-f-]{36}$/);
        assert.equal(u.last_login_at, null);
        assert.deepEqual(withoutTimes((await registry.users.find('olga'))!), withoutTimes(u));
        assert.equal(await registry.users.find('nobody'), null);
      });

      it('refuses a second user with the same name as a 409 conflict', async function () {
        assert.equal(await refusal(registry.users.create({ username: 'olga', password_hash: 'x', role: 'viewer' })), '409 conflict');
      });

      it('counts by role and lists by name with totals', async function () {
        for (const [name, role] of [['zed', 'viewer'], ['ana', 'admin'], ['max', 'viewer']] as const) await registry.users.create({ username: name, password_hash: 'h', role });
        assert.equal(await registry.users.count(), 4);
        assert.equal(await registry.users.count('viewer'), 2);
        assert.equal(await registry.users.count('nobody'), 0);
        const page = await registry.users.list({ limit: 2, offset: 1 });
        assert.equal(page.total, 4);
        assert.deepEqual(page.items.map((u) => u.username), ['max', 'olga']);
      });

      it('updates role, password hash and last login; 404 for no such user', async function () {
        const at = new Date();
        const u = await registry.users.update('olga', { role: 'admin', password_hash: 'scrypt$2', last_login_at: at });
        assert.equal(u.role, 'admin');
        assert.equal(u.password_hash, 'scrypt$2');
        assert.ok(near(u.last_login_at, at));
        const back = (await registry.users.find('olga'))!;
        assert.equal(back.password_hash, 'scrypt$2');
        assert.ok(near(back.last_login_at, at));
        assert.equal((await registry.users.update('olga', {})).role, 'admin', 'an empty patch changes nothing');
        assert.equal(await refusal(registry.users.update('ghost', { role: 'viewer' })), '404 not_found');
      });

      it('deletes a user; 404 the second time', async function () {
        await registry.users.delete('zed');
        assert.equal(await registry.users.find('zed'), null);
        assert.equal(await refusal(registry.users.delete('zed')), '404 not_found');
      });
    });

    describe('tokens', function () {
      let personal: TokenRow;
      let session: TokenRow;

      it('creates sessions and personal tokens, found by hash', async function () {
        const expires = new Date(Date.now() + 3_600_000);
        session = await registry.tokens.create({ kind: 'session', token_hash: hash(1), role: 'admin', username: 'olga', expires_at: expires });
        personal = await registry.tokens.create({ kind: 'personal', token_hash: hash(2), role: 'viewer', username: 'olga', name: 'grafana' });
        assert.equal(session.kind, 'session');
        assert.ok(near(session.expires_at, expires));
        assert.equal(personal.expires_at, null);
        assert.equal(personal.name, 'grafana');
        assert.equal(personal.revoked_at, null);
        assert.deepEqual(withoutTimes((await registry.tokens.findByHash(hash(2)))!), withoutTimes(personal));
        assert.equal(await registry.tokens.findByHash(hash(99)), null);
      });

      it('refuses a second token with the same hash as a 409 conflict', async function () {
        assert.equal(await refusal(registry.tokens.create({ kind: 'personal', token_hash: hash(2), role: 'viewer', username: 'max' })), '409 conflict');
      });

      it('finds personal tokens only by id, and counts and lists them newest first', async function () {
        assert.equal((await registry.tokens.findPersonal(personal.id))?.name, 'grafana');
        assert.equal(await registry.tokens.findPersonal(session.id), null, 'a session is not a personal token');
        assert.equal(await registry.tokens.findPersonal('not-a-uuid'), null);
        assert.equal(await registry.tokens.findPersonal('f'.repeat(36)), null, 'the length of a UUID is not enough (PostgreSQL refuses it)');
        for (let i = 3; i < 8; i++) await registry.tokens.create({ kind: 'personal', token_hash: hash(i), role: 'viewer', username: i % 2 ? 'max' : 'olga', name: `t${i}` });
        await registry.tokens.create({ kind: 'personal', token_hash: hash(8), role: 'admin', username: null, name: 'break-glass' });
        assert.equal(await registry.tokens.countPersonal('olga'), 3);
        const all = await registry.tokens.listPersonal({ limit: 100, offset: 0 });
        assert.equal(all.total, 7, 'sessions are not listed');
        const times = all.items.map((t) => new Date(t.created_at).getTime());
        assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');
        const page = await registry.tokens.listPersonal({ username: 'max', limit: 1, offset: 1 });
        assert.equal(page.total, 3);
        assert.equal(page.items.length, 1);
        assert.equal(page.items[0]!.username, 'max');
      });

      it('revokes once, keeping the first time, also when two revoke at once; 404 for a session id', async function () {
        const [a, b] = await Promise.all([registry.tokens.revoke(personal.id, new Date('2030-01-01T00:00:00Z')), registry.tokens.revoke(personal.id, new Date('2031-01-01T00:00:00Z'))]);
        assert.ok(a.revoked_at && a.revoked_at === b.revoked_at, `${a.revoked_at} / ${b.revoked_at}`);
        const again = await registry.tokens.revoke(personal.id, new Date('2032-01-01T00:00:00Z'));
        assert.equal(again.revoked_at, a.revoked_at);
        assert.equal(await refusal(registry.tokens.revoke(session.id, new Date())), '404 not_found');
      });

      it('records a use', async function () {
        const at = new Date();
        await registry.tokens.touch(personal.id, at);
        assert.ok(near((await registry.tokens.findPersonal(personal.id))!.last_used_at, at));
      });

      it('ends one session, a user\'s sessions, or all their tokens', async function () {
        const other = await registry.tokens.create({ kind: 'session', token_hash: hash(20), role: 'admin', username: 'olga', expires_at: new Date(Date.now() + 60_000) });
        await registry.tokens.endSession(session.id);
        assert.equal(await registry.tokens.findByHash(hash(1)), null);
        await registry.tokens.endSession(personal.id);
        assert.ok(await registry.tokens.findByHash(hash(2)), 'endSession leaves personal tokens alone');
        await registry.tokens.endSession('not-a-uuid');
        await registry.tokens.endSessionsOf('olga');
        assert.equal(await registry.tokens.findByHash(other.token_hash), null);
        assert.equal(await registry.tokens.countPersonal('olga'), 3, 'personal tokens stay');
        await registry.tokens.deleteOf('olga');
        assert.equal(await registry.tokens.countPersonal('olga'), 0);
        assert.equal(await registry.tokens.countPersonal('max'), 3, 'other users keep theirs');
      });

      it('prunes the sessions that expired, nothing else', async function () {
        await registry.tokens.create({ kind: 'session', token_hash: hash(30), role: 'viewer', username: 'max', expires_at: new Date(Date.now() - 60_000) });
        await registry.tokens.create({ kind: 'session', token_hash: hash(31), role: 'viewer', username: 'max', expires_at: new Date(Date.now() + 60_000) });
        assert.equal(await registry.tokens.pruneSessions(new Date()), 1);
        assert.equal(await registry.tokens.findByHash(hash(30)), null);
        assert.ok(await registry.tokens.findByHash(hash(31)));
        assert.equal(await registry.tokens.countPersonal('max'), 3);
      });
    });
  });
}
