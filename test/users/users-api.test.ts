/**
 * The users contract over real HTTP: the first admin, logins (rate-limited, audited), sessions that
 * expire, personal tokens shown once and revocable (only a hash stored), own password changes,
 * role changes taking effect at once, the audit log, the live feed per user, alarm notes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { WebSocket } from 'ws';
import { rawSql } from '../helpers/databases.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';
import { startTestFlux, type TestFlux } from './helpers.ts';

const ADMIN_PASSWORD = 'first-admin-password';

function feedStatus(base: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?access_token=${encodeURIComponent(token)}`);
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => undefined);
  });
}

/** Opens the feed with `token`; `closed` resolves with the close code when the server ends it. */
async function openFeed(base: string, token: string): Promise<{ closed: Promise<number> }> {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?access_token=${encodeURIComponent(token)}`);
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { closed };
}

describe('users, tokens and the audit log', function () {
  this.timeout(60_000);
  let f: TestFlux;
  let admin: string;

  before(async function () {
    f = await startTestFlux({ FLUX_ADMIN_PASSWORD: ADMIN_PASSWORD });
    const login = await f.call('POST', '/auth/login', { username: 'admin', password: ADMIN_PASSWORD }, null);
    assert.equal(login.status, 200);
    admin = login.body.token;
  });

  after(async function () {
    await f?.stop();
  });

  it('creates the first admin from FLUX_ADMIN_PASSWORD, and a login answers a session token with its expiry', async function () {
    assert.equal(f.flux.users.generatedAdminPassword, undefined, 'a password from the environment is not printed');
    const login = await f.call('POST', '/auth/login', { username: 'admin', password: ADMIN_PASSWORD }, null);
    assert.equal(login.body.role, 'admin');
    const other = await f.call('POST', '/auth/login', { username: 'admin', password: ADMIN_PASSWORD }, null);
    assert.equal((await f.call('POST', '/auth/logout', undefined, other.body.token)).status, 204);
    assert.equal((await f.call('GET', '/auth/me', undefined, other.body.token)).status, 401, 'a logged-out session ends');
    assert.equal((await f.call('GET', '/auth/me', undefined, login.body.token)).status, 200, 'the other session stays');
    const expires = Date.parse(login.body.expires_at);
    assert.ok(expires > Date.now() + 11.9 * 3_600_000 && expires <= Date.now() + 12 * 3_600_000, `the default session lasts 12 h: ${login.body.expires_at}`);
    assert.deepEqual((await f.call('GET', '/auth/me', undefined, login.body.token)).body, { username: 'admin', role: 'admin', via: 'session' });
  });

  it('checks user names, passwords and duplicates (400 invalid_id, 400, 409)', async function () {
    assert.equal((await f.call('POST', '/users', { username: 'ana', password: 'ana-password', role: 'viewer' }, admin)).status, 201);
    const dup = await f.call('POST', '/users', { username: 'ana', password: 'other-password', role: 'viewer' }, admin);
    assert.equal(dup.status, 409);
    assert.equal(dup.body.error.code, 'conflict');
    for (const username of ['Ana', '../x', 'a b', 'x'.repeat(65), '', 'admin-token']) {
      const r = await f.call('POST', '/users', { username, password: 'long-enough', role: 'viewer' }, admin);
      assert.equal(r.status, 400, `${JSON.stringify(username)}: ${JSON.stringify(r.body)}`);
    }
    assert.equal((await f.call('POST', '/users', { username: 'shorty', password: 'short', role: 'viewer' }, admin)).status, 400);
    assert.equal((await f.call('POST', '/users', { username: 'roleless', password: 'long-enough', role: 'root' }, admin)).status, 400);
    const list = await f.call('GET', '/users', undefined, admin);
    assert.deepEqual(list.body.items.map((u: { username: string }) => u.username), ['admin', 'ana']);
    assert.ok(!JSON.stringify(list.body).includes('password'), 'no password hash in the answer');
  });

  it('refuses a wrong password with 401, records it, and rate-limits failures per address (429)', async function () {
    // Its own FLUX: the limiter counts per address, and every test runs from 127.0.0.1.
    const g = await startTestFlux({ FLUX_ADMIN_PASSWORD: ADMIN_PASSWORD });
    try {
      await g.call('POST', '/users', { username: 'ana', password: 'ana-password', role: 'viewer' });
      const wrong = await g.call('POST', '/auth/login', { username: 'ana', password: 'not-her-password' }, null);
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error.code, 'unauthorized');
      assert.equal((await g.call('POST', '/auth/login', { username: 'nobody', password: 'whatever-it-is' }, null)).status, 401);
      const audit = await g.call('GET', '/audit?action=login_failed');
      assert.ok(audit.body.items.some((a: any) => a.username === 'ana' && a.status === 401 && a.address === '127.0.0.1'), JSON.stringify(audit.body));
      let status = 0;
      for (let i = 0; i < 12 && status !== 429; i++) status = (await g.call('POST', '/auth/login', { username: 'ana', password: 'still-wrong' }, null)).status;
      assert.equal(status, 429);
      const right = await g.call('POST', '/auth/login', { username: 'ana', password: 'ana-password' }, null);
      assert.equal(right.status, 429, 'blocked even with the right password until the window ends');
      assert.equal(right.body.error.code, 'rate_limited');
    } finally {
      await g.stop();
    }
  });

  it('expires login sessions', async function () {
    const fresh = await startTestFlux({ FLUX_ADMIN_PASSWORD: ADMIN_PASSWORD, FLUX_SESSION_TTL: '1s' });
    try {
      const login = await fresh.call('POST', '/auth/login', { username: 'admin', password: ADMIN_PASSWORD }, null);
      assert.equal((await fresh.call('GET', '/products', undefined, login.body.token)).status, 200);
      const feed = await openFeed(fresh.base, login.body.token);
      assert.equal(await feed.closed, 4401, 'the live feed closes when the session ends');
      await new Promise((r) => setTimeout(r, 200));
      const late = await fresh.call('GET', '/products', undefined, login.body.token);
      assert.equal(late.status, 401);
      assert.equal(late.body.error.code, 'unauthorized');
      assert.equal(await feedStatus(fresh.base, login.body.token), 401);
    } finally {
      await fresh.stop();
    }
  });

  it('shows a personal token once, keeps only its hash, caps it at the owner role, and revokes it', async function () {
    await f.call('POST', '/users', { username: 'olga', password: 'olga-password', role: 'operator' }, admin);
    const olgaToken = (await f.call('POST', '/auth/login', { username: 'olga', password: 'olga-password' }, null)).body.token;
    const created = await f.call('POST', '/tokens', { name: 'grafana', role: 'viewer' }, olgaToken);
    assert.equal(created.status, 201);
    assert.match(created.body.token, /^flx_/);
    assert.equal(created.body.role, 'viewer');
    assert.equal(created.body.username, 'olga');
    const tooHigh = await f.call('POST', '/tokens', { name: 'root', role: 'admin' }, olgaToken);
    assert.equal(tooHigh.status, 403);
    const list = await f.call('GET', '/tokens', undefined, olgaToken);
    assert.deepEqual(list.body.items.map((t: any) => t.name), ['grafana']);
    assert.ok(!JSON.stringify(list.body).includes(created.body.token), 'the token is never shown again');
    const sql = await rawSql(f.flux.ctx.settings.db);
    const rows = await sql.query<{ token_hash: string }>('SELECT token_hash FROM api_tokens').finally(() => sql.close());
    assert.ok(!JSON.stringify(rows).includes(created.body.token), 'the token is not stored');
    assert.ok(rows.some((r) => r.token_hash === createHash('sha256').update(created.body.token).digest('hex')), 'its SHA-256 is');
    const token = created.body.token as string;
    assert.deepEqual((await f.call('GET', '/auth/me', undefined, token)).body, { username: 'olga', role: 'viewer', via: 'token' });
    assert.equal((await f.call('POST', '/products', { key: 'by_token', name: 'x' }, token)).status, 403);
    assert.equal(await feedStatus(f.base, token), 101);
    const feed = await openFeed(f.base, token);
    assert.equal((await f.call('DELETE', `/tokens/${created.body.id}`, undefined, olgaToken)).status, 204);
    assert.equal(await feed.closed, 4401, 'a revoked token loses the live feed at once');
    assert.equal((await f.call('GET', '/products', undefined, token)).status, 401);
    assert.equal(await feedStatus(f.base, token), 401);
    assert.ok((await f.call('GET', '/tokens', undefined, olgaToken)).body.items[0].revoked_at);
  });

  it('applies a role change and a deletion at once, and keeps the last admin', async function () {
    const s = await f.flux.users.accounts.startSession(await f.flux.users.accounts.create({ username: 'vic', password: 'vic-password', role: 'operator' }), 60_000);
    assert.equal((await f.call('POST', '/products', { key: 'vic_p', name: 'x' }, s.token)).status, 201);
    assert.equal((await f.call('PATCH', '/users/vic', { role: 'viewer' }, admin)).status, 200);
    assert.equal((await f.call('POST', '/products', { key: 'vic_q', name: 'x' }, s.token)).status, 403);
    assert.equal((await f.call('DELETE', '/users/vic', undefined, admin)).status, 204);
    assert.equal((await f.call('GET', '/products', undefined, s.token)).status, 401);
    assert.equal((await f.call('DELETE', '/users/admin', undefined, admin)).status, 409, 'the last admin stays');
    assert.equal((await f.call('PATCH', '/users/admin', { role: 'operator' }, admin)).status, 409);
    assert.equal((await f.call('DELETE', '/users/nobody', undefined, admin)).status, 404);
  });

  it('changes your own password with the current one, ending your other sessions', async function () {
    await f.flux.users.accounts.create({ username: 'pat', password: 'pat-password', role: 'viewer' });
    const one = await f.flux.users.accounts.startSession((await f.flux.users.accounts.get('pat'))!, 60_000);
    const wrong = await f.call('PUT', '/auth/password', { current_password: 'nope-nope', password: 'pat-new-password' }, one.token);
    assert.equal(wrong.status, 401);
    assert.equal((await f.call('PUT', '/auth/password', { current_password: 'pat-password', password: 'pat-new-password' }, one.token)).status, 204);
    assert.equal((await f.call('GET', '/auth/me', undefined, one.token)).status, 401, 'sessions end with a new password');
    assert.ok(await f.flux.users.accounts.verify('pat', 'pat-new-password'));
    assert.equal(await f.flux.users.accounts.verify('pat', 'pat-password'), null);
    assert.equal((await f.call('PUT', '/auth/password', { current_password: 'x', password: 'y-long-enough' }, TEST_TOKEN)).status, 400, 'the admin token is no user');
  });

  it('records every change with who, what, when, from where and the result; paginated; admins only', async function () {
    const op = await f.flux.users.accounts.startSession(await f.flux.users.accounts.create({ username: 'otto', password: 'otto-password', role: 'operator' }), 60_000);
    assert.equal((await f.call('POST', '/products', { key: 'audited', name: 'Audited' }, op.token)).status, 201);
    assert.equal((await f.call('POST', '/users', { username: 'x1', password: 'x1-password', role: 'admin' }, op.token)).status, 403);
    const page = await until('the audit rows', async () => {
      const r = await f.call('GET', '/audit?username=otto&limit=1', undefined, admin);
      return r.body.total >= 2 ? r : undefined;
    });
    assert.equal(page.body.items.length, 1);
    const all = (await f.call('GET', '/audit?username=otto', undefined, admin)).body.items;
    const created = all.find((a: any) => a.action === 'POST /products');
    assert.equal(created.status, 201);
    assert.equal(created.role, 'operator');
    assert.equal(created.target, '/api/products');
    assert.equal(created.address, '127.0.0.1');
    assert.ok(Math.abs(Date.parse(created.at) - Date.now()) < 60_000);
    assert.ok(all.some((a: any) => a.action === 'POST /users' && a.status === 403), 'refused attempts are recorded too');
    const tokens = (await f.call('GET', '/audit?action=POST%20%2Ftokens', undefined, admin)).body.items;
    assert.ok(tokens.some((a: any) => a.username === 'olga' && a.status === 201), 'token creation is recorded');
    assert.ok((await f.call('GET', '/audit?action=DELETE%20%2Ftokens%2F%3Aid', undefined, admin)).body.total >= 1, 'token revocation is recorded');
    assert.equal((await f.call('GET', '/audit', undefined, op.token)).status, 403);
  });

  it('keeps who acknowledged an alarm and the note', async function () {
    const op = await f.flux.users.accounts.startSession((await f.flux.users.accounts.get('otto'))!, 60_000);
    const alarm = await f.flux.modules.alarms.raise({ level: 'warning', message: 'pump pressure low' });
    const viewer = await f.flux.users.accounts.startSession((await f.flux.users.accounts.get('ana'))!, 60_000);
    assert.equal((await f.call('POST', `/alarms/${alarm.id}/ack`, { note: 'x' }, viewer.token)).status, 403);
    const acked = await f.call('POST', `/alarms/${alarm.id}/ack`, { note: 'valve opened, Otto on site' }, op.token);
    assert.equal(acked.status, 200);
    assert.equal(acked.body.state, 'acknowledged');
    assert.equal(acked.body.acked_by, 'otto');
    assert.equal(acked.body.ack_note, 'valve opened, Otto on site');
    assert.equal((await f.call('GET', `/alarms/${alarm.id}`, undefined, viewer.token)).body.ack_note, 'valve opened, Otto on site');
    assert.equal((await f.call('POST', `/alarms/${alarm.id}/ack`, { note: 'n'.repeat(1001) }, op.token)).status, 400);
  });

  it('generates the first admin password when none is set, once', async function () {
    const dir = tempDir();
    const first = await startTestFlux({}, dir);
    const password = first.flux.users.generatedAdminPassword;
    await first.stop();
    assert.ok(password && password.length >= 16);
    const again = await startTestFlux({}, dir);
    try {
      assert.equal(again.flux.users.generatedAdminPassword, undefined, 'a later start does not make a new one');
      assert.ok(await again.flux.users.accounts.verify('admin', password));
    } finally {
      await again.stop();
    }
  });
});
