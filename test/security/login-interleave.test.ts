/**
 * The per-address limit on failed logins cannot be reset by logging in to one's own account. A
 * success cleared the address's count, so anyone with an account (a viewer) could try nine
 * passwords of another user (the admin), log in once as themselves, and go on without ever
 * getting 429: the guesses were unbounded. A success now undoes only its own attempt.
 */
import assert from 'node:assert/strict';
import { startTestFlux, type TestFlux } from '../users/helpers.ts';

describe('security: a good login of your own does not reset the failed-login limit', function () {
  this.timeout(120_000);
  let f: TestFlux;

  before(async () => {
    f = await startTestFlux();
    assert.equal((await f.call('POST', '/users', { username: 'mallory', password: 'mallory-password-1', role: 'viewer' })).status, 201);
  });
  after(() => f?.stop());

  /** a login from `address` (the test talks to FLUX over loopback, a trusted proxy: X-Forwarded-For names the client) */
  const login = async (address: string, username: string, password: string) => {
    const res = await fetch(`${f.base}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-for': address }, body: JSON.stringify({ username, password }) });
    await res.arrayBuffer();
    return res.status;
  };

  it("answers 429 to guesses at another user's password, however many good logins of one's own come between", async () => {
    const statuses: number[] = [];
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 9; i++) statuses.push(await login('198.51.100.7', 'admin', `guess-${round}-${i}`));
      statuses.push(await login('198.51.100.7', 'mallory', 'mallory-password-1'));
    }
    assert.ok(statuses.includes(429), `27 guesses and 3 good logins from one address, never refused: ${statuses.join(' ')}`);
    assert.equal(statuses.filter((s) => s === 401).length, 10, 'ten failures, then the address waits');
  });

  it('still lets a user log in again and again, and mistype a few times in between', async () => {
    for (let i = 0; i < 12; i++) assert.equal(await login('198.51.100.8', 'mallory', 'mallory-password-1'), 200);
    for (let i = 0; i < 5; i++) assert.equal(await login('198.51.100.8', 'mallory', 'typo-password'), 401);
    assert.equal(await login('198.51.100.8', 'mallory', 'mallory-password-1'), 200);
  });
});
