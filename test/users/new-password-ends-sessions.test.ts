/**
 * A new password ends the user's login sessions at once, also while one of them holds the live
 * feed: the feed's re-check of its clients (runtime/feed) must not find, and cache, a session that
 * is about to be deleted. Before the fix, on PostgreSQL, the session kept working for the token
 * cache's 10 s and the feed stayed open until the session expired (12 h).
 */
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { createTestDatabase, type TestDatabase } from '../helpers/databases.ts';
import { startTestFlux, type TestFlux } from './helpers.ts';

/** Opens the feed with `token`; `closed` resolves with the close code when the server ends it. */
async function openFeed(base: string, token: string): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws?access_token=${encodeURIComponent(token)}`);
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, closed };
}

const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms))]);

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`users on ${kind}: a new password ends the login sessions at once, the live feed included`, function () {
    this.timeout(60_000);
    let f: TestFlux;
    let db: TestDatabase | undefined;

    before(async function () {
      if (kind === 'postgres') db = await createTestDatabase('postgres', 'flux_pwfeed');
      f = await startTestFlux(db ? { FLUX_DB_URL: db.url, FLUX_TS_URL: '' } : {});
    });

    after(async function () {
      await f?.stop();
      await db?.drop();
    });

    it('set by an admin (PATCH /users/{username})', async function () {
      const session = await f.userToken('nina', 'operator', 'nina-password-1');
      const feed = await openFeed(f.base, session);
      try {
        assert.equal((await f.call('PATCH', '/users/nina', { password: 'nina-password-2' })).status, 200);
        assert.equal((await f.call('GET', '/auth/me', undefined, session)).status, 401, 'the old session is refused right after the change');
        assert.equal(await within(feed.closed, 3000, 'closing the feed'), 4401);
      } finally {
        feed.ws.terminate();
      }
    });

    it('changed by the user (PUT /auth/password)', async function () {
      const session = await f.userToken('otto', 'viewer', 'otto-password-1');
      const other = (await f.call('POST', '/auth/login', { username: 'otto', password: 'otto-password-1' }, null)).body.token as string;
      const feed = await openFeed(f.base, other);
      try {
        assert.equal((await f.call('PUT', '/auth/password', { current_password: 'otto-password-1', password: 'otto-password-2' }, session)).status, 204);
        assert.equal((await f.call('GET', '/auth/me', undefined, other)).status, 401, 'the other session is refused right after the change');
        assert.equal(await within(feed.closed, 3000, 'closing the feed'), 4401);
      } finally {
        feed.ws.terminate();
      }
    });
  });
}
