/**
 * Flow state shared by a cluster's nodes (two FLUX processes, a Redis of the test's own, one
 * PostgreSQL database; docs/cluster.md "Flows"): a function node on A sets global and flow context
 * and a function node on B reads it (the default context store is Redis, under FLUX_REDIS_PREFIX);
 * the in-memory store stays per node as `local`; a value over the bound is refused with a reason;
 * the context of a node deleted from the flows is cleaned. An `http request` node whose basic-auth
 * user and password were deployed on A sends them from B (the credentials are stored encrypted with
 * FLUX_CREDENTIAL_SECRET in the shared database), also after a deploy that changed only the password.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { rawSql } from '../helpers/databases.ts';
import { startCluster, until, type TestCluster, type TestNode, editorFlows } from './cluster.ts';

const TAB = 'fs-tab';
const endpoint = (id: string, url: string, func: string) => [
  { id: `${id}-in`, type: 'http in', z: TAB, url, method: 'get', wires: [[`${id}-fn`]] },
  { id: `${id}-fn`, type: 'function', z: TAB, outputs: 1, func, wires: [[`${id}-out`]] },
  { id: `${id}-out`, type: 'http response', z: TAB, statusCode: '', headers: {}, wires: [] },
];
/** answers `{ ok }` or `{ error }` once `run(done)` calls done(err?) */
const replying = (body: string) => `const done = (err, value) => { msg.payload = err ? { error: err.message } : { ok: value === undefined ? true : value }; node.send(msg); };\n${body}\nreturn null;`;

function flows(echoUrl: string, withScratch = true) {
  return [
    { id: TAB, type: 'tab', label: 'flow state' },
    ...endpoint('set', '/state/set', replying(`global.set('shared', msg.req.query.v, (e) => e ? done(e) : flow.set('f', 'flow-' + msg.req.query.v, done));`)),
    ...endpoint('get', '/state/get', replying(`global.get('shared', (e, g) => e ? done(e) : flow.get('f', (e2, f) => done(e2, { g, f })));`)),
    ...endpoint('big', '/state/big', replying(`global.set('big', 'x'.repeat(2 * 1024 * 1024), (e) => done(e));`)),
    ...endpoint('sync', '/state/sync', replying(`try { global.get('shared'); done(null, 'answered'); } catch (e) { done(e); }`)),
    ...endpoint('local', '/state/local', replying(`if (msg.req.query.v) global.set('mine', msg.req.query.v, 'local'); done(null, global.get('mine', 'local') ?? null);`)),
    ...(withScratch ? endpoint('scratch', '/state/scratch', replying(`context.set('n', 42, (e) => done(e));`)) : []),
    { id: 'creds-in', type: 'http in', z: TAB, url: '/state/creds', method: 'get', wires: [['creds-req']] },
    { id: 'creds-req', type: 'http request', z: TAB, method: 'GET', ret: 'txt', url: echoUrl, authType: 'basic', credentials: { user: 'flux-user', password: 'pa55-word-on-A' }, wires: [['creds-out']] },
    { id: 'creds-out', type: 'http response', z: TAB, statusCode: '', headers: {}, wires: [] },
  ];
}

describe('cluster: flow context and credentials are shared', function () {
  this.timeout(60_000);
  let c: TestCluster;
  let a: TestNode, b: TestNode;
  let echo: http.Server;
  let echoUrl: string;
  const seen: string[] = [];

  const deploy = async (node: TestNode, nodes: unknown[]) => {
    const current = (await (await editorFlows(node, 'GET')).json()) as { flows: { id: string; z?: string }[]; rev: string };
    const others = current.flows.filter((n) => n.id !== TAB && n.z !== TAB);
    const r = await editorFlows(node, 'POST', { flows: [...others, ...nodes], rev: current.rev });
    assert.equal(r.status, 200, await r.text());
  };
  /** GET a flow endpoint; null while the flow (re)starts (a request may then get no answer: sync.test.ts) */
  const call = async (node: TestNode, path: string) => {
    const r = await fetch(`${node.url}/flows${path}`, { signal: AbortSignal.timeout(2000) }).catch(() => null);
    if (r?.status !== 200) return null;
    const text = await r.text();
    try {
      return JSON.parse(text) as { ok?: unknown; error?: string };
    } catch {
      return { ok: text };
    }
  };
  const redisKeys = async (pattern: string) => (await c.redis.cli('--scan', '--pattern', `${c.env.FLUX_REDIS_PREFIX}${pattern}`)).split('\n').filter(Boolean);

  before(async function () {
    this.timeout(180_000);
    echo = http.createServer((req, res) => {
      seen.push(req.headers.authorization ?? '');
      res.end(`auth=${req.headers.authorization ?? ''}`);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoUrl = `http://127.0.0.1:${(echo.address() as AddressInfo).port}/echo`;
    c = await startCluster(2, {}, 'cluster_state');
    [a, b] = c.nodes as [TestNode, TestNode];
    await deploy(a, flows(echoUrl));
    await until(async () => (await call(b, '/state/get')) !== null, 'the flows running on B', 20_000, 200);
  });
  after(async () => {
    await c?.stop();
    echo?.close();
  });

  it('global and flow context set by a function node on A are read by a function node on B, in Redis under the prefix', async () => {
    assert.deepEqual(await until(() => call(a, '/state/set?v=from-A'), 'the set on A'), { ok: true });
    assert.deepEqual(await call(b, '/state/get'), { ok: { g: 'from-A', f: 'flow-from-A' } });
    assert.deepEqual(await until(() => call(b, '/state/set?v=from-B'), 'the set on B'), { ok: true });
    assert.deepEqual(await call(a, '/state/get'), { ok: { g: 'from-B', f: 'flow-from-B' } });
    const keys = await redisKeys('context:*');
    assert.ok(keys.includes(`${c.env.FLUX_REDIS_PREFIX}context:global`), keys.join(' '));
    assert.ok(keys.includes(`${c.env.FLUX_REDIS_PREFIX}context:${TAB}`), keys.join(' '));
    assert.equal(await c.redis.cli('hget', `${c.env.FLUX_REDIS_PREFIX}context:global`, 'shared'), '"from-B"');
  });

  it('the shared store answers through callbacks only, and the in-memory store `local` stays per node', async () => {
    const sync = await call(a, '/state/sync');
    assert.match(String(sync?.error), /answers through a callback/);
    assert.deepEqual(await call(a, '/state/local?v=on-A'), { ok: 'on-A' });
    assert.deepEqual(await call(b, '/state/local'), { ok: null });
  });

  it('refuses a value over the bound with a reason and keeps the scope as it was', async () => {
    const big = await call(a, '/state/big');
    assert.match(String(big?.error), /at most 1048576 per value/);
    assert.equal(await c.redis.cli('hexists', `${c.env.FLUX_REDIS_PREFIX}context:global`, 'big'), '0');
    assert.deepEqual(await call(b, '/state/get'), { ok: { g: 'from-B', f: 'flow-from-B' } });
  });

  it('an http request node deployed on A with basic-auth credentials sends them from B; the shared database holds them encrypted', async () => {
    const answer = await until(() => call(b, '/state/creds'), 'the http request through B');
    assert.equal(answer.ok, `auth=Basic ${Buffer.from('flux-user:pa55-word-on-A').toString('base64')}`);
    const sql = await rawSql(c.db.url);
    try {
      const [row] = await sql.query<{ credentials: string }>(`SELECT credentials FROM shared_flows WHERE id = 'flows'`);
      assert.match(row!.credentials, /^\{"\$":"[0-9a-f]{32}/);
      assert.ok(!row!.credentials.includes('pa55-word-on-A'));
    } finally {
      await sql.close();
    }
  });

  it('a deploy on A that changes only the password (the flows\' revision stays) reaches B', async () => {
    const before = ((await (await editorFlows(a, 'GET')).json()) as { rev: string }).rev;
    await deploy(a, flows(echoUrl).map((n) => (n.id === 'creds-req' ? { ...n, credentials: { user: 'flux-user', password: 'changed-on-A' } } : n)));
    assert.equal(((await (await editorFlows(a, 'GET')).json()) as { rev: string }).rev, before, 'the flow JSON (without credentials) is unchanged');
    const want = `auth=Basic ${Buffer.from('flux-user:changed-on-A').toString('base64')}`;
    await until(async () => (await call(b, '/state/creds'))?.ok === want, 'B sending the new password', 15_000, 200);
  });

  it('cleans the context of a node deleted from the flows', async () => {
    assert.deepEqual(await until(() => call(a, '/state/scratch'), 'the scratch node on A'), { ok: true });
    const scratchKey = `${c.env.FLUX_REDIS_PREFIX}context:scratch-fn:${TAB}`;
    assert.ok((await redisKeys('context:scratch-fn:*')).includes(scratchKey));
    await deploy(a, flows(echoUrl, false));
    await until(async () => (await redisKeys('context:scratch-fn:*')).length === 0, 'the deleted node\'s context cleaned', 15_000, 200);
    // what the remaining flows hold stays
    assert.equal(await c.redis.cli('hget', `${c.env.FLUX_REDIS_PREFIX}context:global`, 'shared'), '"from-B"');
  });
});
