/**
 * GraphQL's WebSockets in their own process (FLUX_GRAPHQL_SOCKETS=process, the default;
 * docs/graphql.md "Where the sockets live"), against the real FLUX process: the handover of many
 * sockets at once (each client speaks right after the 101), queries and mutations sent over a socket
 * run by FLUX with its roles and audit, a socket process that dies (clients disconnected, the next
 * one served by a new process), FLUX killed with SIGKILL (the socket process goes too), and hostile
 * upgrades.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import WebSocket from 'ws';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { waitFor } from '../rules/helpers.ts';
import { collect, wsClient } from './helpers.ts';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** FLUX's child processes (the socket process is the only one in these tests). */
const childrenOf = (pid: number): number[] =>
  fs.readdirSync(`/proc/${pid}/task`).flatMap((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));

/** A bare graphql-transport-ws client that sends connection_init the moment the socket opens; resolves with the first message. */
function initAtOnce(url: string, token: string): Promise<{ ws: WebSocket; first: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'graphql-transport-ws');
    ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
    ws.once('message', (d) => resolve({ ws, first: String(d) }));
    ws.once('error', reject);
    ws.once('close', (code) => reject(new Error(`closed ${code} before any message`)));
  });
}

describe('GraphQL WebSockets in their own process (real FLUX process)', function () {
  this.timeout(120_000);
  let flux: FluxProcess;
  let wsUrl: string;
  const health = async () => (await flux.api('GET', '/api/health')).body.components.graphql;

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn', FLUX_GRAPHQL_SOCKETS: 'process' });
    wsUrl = `${flux.url.replace(/^http/, 'ws')}/api/graphql`;
  });
  after(async () => {
    await flux?.stop();
  });

  it('starts on the first upgrade, and hands over 300 sockets opened at once, each speaking right after its 101', async () => {
    assert.deepEqual(childrenOf(flux.child.pid!), [], 'no socket process before the first WebSocket');
    assert.equal((await health()).sockets, 'process');
    const all = await Promise.all(Array.from({ length: 300 }, () => initAtOnce(wsUrl, flux.token)));
    try {
      for (const { first } of all) assert.deepEqual(JSON.parse(first), { type: 'connection_ack' });
      assert.equal(childrenOf(flux.child.pid!).length, 1, 'one socket process');
      await waitFor('300 connections counted', async () => (await health()).connections === 300);
    } finally {
      for (const { ws } of all) ws.close();
    }
    await waitFor('connections closed', async () => (await health()).connections === 0);
  });

  it('runs queries and mutations sent over a socket in FLUX, with their roles and the audit log', async () => {
    const viewer = await flux.api('POST', '/api/users', { username: 'wsviewer', password: 'wsviewer-password', role: 'viewer' });
    assert.equal(viewer.status, 201);
    const login = await fetch(`${flux.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'wsviewer', password: 'wsviewer-password' }) });
    const viewerToken = ((await login.json()) as { token: string }).token;
    const once = (token: string, query: string) => {
      const c = wsClient(flux.url, { authorization: `Bearer ${token}` });
      return new Promise<any>((resolve, reject) => c.subscribe({ query }, { next: resolve, error: reject, complete: () => undefined })).finally(() => c.dispose());
    };
    const made = await once(flux.token, 'mutation { createProduct(input: { key: "wsprod", name: "Over a socket" }) { id key name } }');
    assert.equal(made.data.createProduct.key, 'wsprod', JSON.stringify(made));
    const id = made.data.createProduct.id as string;
    const read = await once(viewerToken, `{ product(id: "${id}") { key name } }`);
    assert.deepEqual(read.data.product, { key: 'wsprod', name: 'Over a socket' });
    const refused = await once(viewerToken, `mutation { deleteProduct(id: "${id}") }`);
    assert.equal(refused.errors?.[0]?.extensions?.code, 'forbidden', JSON.stringify(refused));
    const audit = await flux.api('GET', '/api/audit?limit=50');
    const actions = (audit.body.items as { action: string; status: number; address: string | null }[]).filter((a) => a.action.startsWith('graphql '));
    assert.ok(actions.some((a) => a.action === 'graphql createProduct' && a.status === 200 && a.address), JSON.stringify(actions));
    assert.ok(actions.some((a) => a.action === 'graphql deleteProduct' && a.status === 403), JSON.stringify(actions));
  });

  it('refuses hostile upgrades with a reason and keeps serving', async () => {
    // no Sec-WebSocket-Key: ws answers 400 from the socket process
    const bad = await new Promise<string>((resolve, reject) => {
      const s = net.connect(flux.http, '127.0.0.1', () => s.write('GET /api/graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n'));
      let out = '';
      s.on('data', (d) => (out += d));
      s.on('close', () => resolve(out));
      s.on('error', reject);
    });
    assert.match(bad, /^HTTP\/1\.1 400/);
    // a message over 64 KiB closes the connection with 1009
    const { ws } = await initAtOnce(wsUrl, flux.token);
    const code = await new Promise<number>((resolve) => {
      ws.once('close', (c) => resolve(c));
      ws.send('x'.repeat(70 * 1024));
    });
    assert.equal(code, 1009);
    // a wrong token: 4403
    const denied = await new Promise<number>((resolve) => {
      const w = new WebSocket(wsUrl, 'graphql-transport-ws');
      w.once('open', () => w.send(JSON.stringify({ type: 'connection_init', payload: { authorization: 'Bearer nope' } })));
      w.once('close', (c) => resolve(c));
    });
    assert.equal(denied, 4403);
    const { ws: fine, first } = await initAtOnce(wsUrl, flux.token);
    assert.deepEqual(JSON.parse(first), { type: 'connection_ack' });
    fine.close();
  });

  it('a socket process that dies disconnects its clients; the next upgrade is served by a new one', async () => {
    const c = wsClient(flux.url, { authorization: `Bearer ${flux.token}` });
    const closed = new Promise<number>((resolve) => c.on('closed', (e) => resolve((e as { code: number }).code)));
    const s = collect(c, 'subscription { status { device_id status } }');
    await waitFor('subscribed', async () => (await health()).subscriptions === 1);
    const [pid] = childrenOf(flux.child.pid!);
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    assert.equal(await closed, 1006);
    s.stop();
    await c.dispose();
    await waitFor('counted as gone', async () => (await health()).subscriptions === 0 && (await health()).connections === 0);
    const again = wsClient(flux.url, { authorization: `Bearer ${flux.token}` });
    try {
      const r = await new Promise<any>((resolve, reject) => again.subscribe({ query: '{ products { page { total } } }' }, { next: resolve, error: reject, complete: () => undefined }));
      assert.ok(r.data.products.page.total >= 0);
      const [next] = childrenOf(flux.child.pid!);
      assert.ok(next && next !== pid, 'a new socket process');
    } finally {
      await again.dispose();
    }
    assert.ok((await flux.api('GET', '/api/health')).status === 200, 'FLUX itself kept running');
  });
});

describe('GraphQL socket process when FLUX is killed', function () {
  this.timeout(120_000);

  it('exits with FLUX (SIGKILL): no orphan keeps the sockets', async () => {
    const flux = await startFlux({ FLUX_LOG_LEVEL: 'warn', FLUX_GRAPHQL_SOCKETS: 'process' });
    const { ws } = await initAtOnce(`${flux.url.replace(/^http/, 'ws')}/api/graphql`, flux.token);
    const [pid] = childrenOf(flux.child.pid!);
    assert.ok(pid && alive(pid));
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    flux.child.kill('SIGKILL');
    await closed;
    await waitFor('the socket process exited', async () => !alive(pid!));
  });
});
