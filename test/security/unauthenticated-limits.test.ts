/**
 * Unauthenticated requests against the real process, as the attacker sent them: editor logins with
 * 4 MB user names (Node-RED kept each for 10 minutes: 240 of them took RSS from 118 MB to 1.26 GB),
 * wrong passwords under ever-new user names (Node-RED limits per name only), and large bodies to
 * every route that answers without a token. Memory must stay flat, and login failures are limited
 * per client address.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { rawRequest, type RawAnswer } from '../helpers/raw-http.ts';

const rssMiB = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The lowest RSS over a few seconds: lets the collector settle after a burst (the child has no --expose-gc). */
async function settledRss(pid: number, ms = 6000): Promise<number> {
  let low = Infinity;
  for (const end = Date.now() + ms; Date.now() < end; ) {
    low = Math.min(low, rssMiB(pid));
    await sleep(250);
  }
  return low;
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const login = (username: string, password: string) => form({ client_id: 'node-red-editor', grant_type: 'password', scope: '*', username, password });

/** Runs `count` requests, `concurrency` at a time; answers the status counts. Connection resets after an early answer count as `reset`. */
async function flood(count: number, concurrency: number, send: (i: number) => Promise<RawAnswer>): Promise<Record<string, number>> {
  const statuses: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        let key: string;
        try {
          key = String((await send(i)).status);
        } catch (err) {
          key = /ECONNRESET|EPIPE|socket hang up/.test((err as Error).message) ? 'reset' : `error: ${(err as Error).message}`;
        }
        statuses[key] = (statuses[key] ?? 0) + 1;
      }
    }),
  );
  return statuses;
}

describe('security: unauthenticated input is bounded in size and rate', function () {
  this.timeout(600_000);
  let flux: FluxProcess;
  const formHeaders = { 'content-type': 'application/x-www-form-urlencoded' };

  before(async () => {
    flux = await startFlux({}, { timeoutMs: 90_000 });
  });
  after(() => flux?.stop());

  it('refuses a 4 MB user name (413) and a 2,000-character one (400) without touching Node-RED', async () => {
    const big = await rawRequest(flux.http, 'POST', '/editor/auth/token', { headers: formHeaders, body: login('u'.repeat(4 * 2 ** 20), 'x') });
    assert.equal(big.status, 413, big.text.slice(0, 200));
    assert.equal(big.body.error.code, 'too_large');
    const long = await rawRequest(flux.http, 'POST', '/editor/auth/token', { headers: formHeaders, body: login('u'.repeat(2000), 'x') });
    assert.equal(long.status, 400, long.text.slice(0, 200));
    assert.match(long.body.error.message, /at most 64/);
    // The bound holds whatever the headers: a bogus bearer does not let the body through.
    const bogus = await rawRequest(flux.http, 'POST', '/editor/auth/token', { headers: { ...formHeaders, authorization: 'Bearer nope' }, body: login('u'.repeat(64 * 1024), 'x') });
    assert.equal(bogus.status, 413);
  });

  it('keeps RSS flat under 10,000 unauthenticated requests with large user names and bodies', async () => {
    const pid = flux.child.pid!;
    const bigName = 'n'.repeat(128 * 1024);
    const kinds = [
      // the attack: editor logins with large, ever-new user names (the limiter soon answers 429)
      (i: number) => rawRequest(flux.http, 'POST', '/editor/auth/token', { headers: formHeaders, body: login(`${i}${bigName}`, 'wrong') }),
      (i: number) => rawRequest(flux.http, 'POST', '/editor/auth/token', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_id: 'node-red-editor', grant_type: 'password', scope: '*', username: `${i}${'j'.repeat(3000)}`, password: 'x' }) }),
      // any other editor route without a token
      () => rawRequest(flux.http, 'POST', '/editor/flows', { headers: { 'content-type': 'application/json' }, body: `[${'{"id":"x"},'.repeat(2000)}{}]` }),
      // API routes without a token: a body to an authenticated route, to the health check, to the device uplink
      () => rawRequest(flux.http, 'POST', '/api/products', { headers: { 'content-type': 'application/json' }, body: `{"key":"k","name":"${'x'.repeat(20 * 1024)}"}` }),
      () => rawRequest(flux.http, 'GET', '/api/health', { headers: { 'content-type': 'application/json' }, body: `{"x":"${'x'.repeat(20 * 1024)}"}` }),
      () => rawRequest(flux.http, 'POST', '/api/devices/nobody/uplink', { headers: { 'content-type': 'application/json' }, body: `{"values":{"x":"${'x'.repeat(20 * 1024)}"}}` }),
    ];
    // Warm up every path once so lazily loaded code is counted in the baseline.
    for (let i = 0; i < kinds.length; i++) await kinds[i]!(i).catch(() => undefined);
    const before = await settledRss(pid);
    const t0 = Date.now();
    const statuses = await flood(10_000, 16, (i) => kinds[i % kinds.length]!(i));
    const seconds = (Date.now() - t0) / 1000;
    const after = await settledRss(pid);
    console.log(`      10,000 unauthenticated requests in ${seconds.toFixed(1)} s: RSS ${before.toFixed(0)} → ${after.toFixed(0)} MiB (settled); answers ${JSON.stringify(statuses)}`);
    // 200: the health check (it reads no body); everything else is refused, none with a 5xx.
    for (const key of Object.keys(statuses)) assert.ok(/^(200|4\d\d|reset)$/.test(key), `no answer is a 5xx or an error (got ${key} × ${statuses[key]})`);
    assert.ok((statuses['200'] ?? 0) <= Math.ceil(10_000 / kinds.length), 'only the health check answers 200');
    assert.ok(after - before < 80, `RSS grew by ${(after - before).toFixed(0)} MiB (from ${before.toFixed(0)} to ${after.toFixed(0)}); it must stay flat`);
    assert.equal((await flux.api('GET', '/api/health')).status, 200, 'the process still answers');
  });
});

describe('security: failed logins are limited per client address', function () {
  this.timeout(120_000);
  let flux: FluxProcess;
  const formHeaders = { 'content-type': 'application/x-www-form-urlencoded' };

  before(async () => {
    flux = await startFlux({}, { timeoutMs: 90_000 });
  });
  after(() => flux?.stop());

  it('answers 429 with Retry-After after 10 wrong passwords from one address, whatever the user names', async () => {
    const ok = await rawRequest(flux.http, 'POST', '/editor/auth/token', { headers: formHeaders, body: login('admin', flux.token) });
    assert.equal(ok.status, 200, `the right password logs in: ${ok.text.slice(0, 200)}`);
    const answers: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await rawRequest(flux.http, 'POST', '/editor/auth/token', { headers: formHeaders, body: login(`user${i}`, 'wrong-password') });
      answers.push(r.status);
      if (r.status === 429) {
        assert.equal(r.body.error.code, 'rate_limited');
        assert.ok(Number(r.headers['retry-after']) > 0, 'Retry-After is set');
      }
    }
    assert.deepEqual(answers.slice(0, 10).filter((s) => s === 429), [], `the first 10 failures are answered by the login (got ${answers.join(' ')})`);
    assert.ok(answers.slice(0, 10).every((s) => s === 401 || s === 403), `the first 10 are refused logins (got ${answers.join(' ')})`);
    assert.deepEqual(answers.slice(10), Array(10).fill(429), `failures 11-20 are rate limited (got ${answers.join(' ')})`);
    const blocked = await rawRequest(flux.http, 'POST', '/editor/auth/token', { headers: formHeaders, body: login('admin', flux.token) });
    assert.equal(blocked.status, 429, 'while blocked, even the right password waits');
    // Other clients are not affected: the API with its bearer token still answers.
    assert.equal((await flux.api('GET', '/api/devices')).status, 200);
  });

  it("closes the editor's comms WebSocket on a 1 MiB frame sent before authenticating (1009)", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${flux.http}/editor/comms`);
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error('the comms socket did not open'));
    });
    const closed = new Promise<number>((resolve) => (ws.onclose = (e) => resolve(e.code)));
    ws.send(JSON.stringify({ auth: 'x'.repeat(2 ** 20) }));
    const code = await Promise.race([closed, sleep(10_000).then(() => -1)]);
    assert.equal(code, 1009, 'the server closes with 1009 "message too big" (-1: still open after 10 s)');
  });
});
