/**
 * The committed schema (docs/schema.graphql) is the code's, and the limits hold: depth, aliases,
 * field suggestions hidden, GraphiQL only with the token. In-process FLUX over real HTTP.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { loadGraphqlEngine } from '../../runtime/graphql/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { ROOT, tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';
import { gql } from './helpers.ts';

describe('GraphQL schema file and limits', function () {
  this.timeout(30_000);
  let flux: Flux;
  let base: string;

  before(async () => {
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN });
    flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
    base = `http://127.0.0.1:${(await flux.start()).http}`;
  });
  after(async () => {
    await flux?.stop();
  });

  it('docs/schema.graphql is the schema the code serves (npm run docs:api rewrites it)', async () => {
    const committed = fs.readFileSync(path.join(ROOT, 'docs', 'schema.graphql'), 'utf8');
    assert.equal(committed, (await loadGraphqlEngine()).schemaText(), 'docs/schema.graphql is stale: run npm run docs:api');
  });

  it('refuses a query nested deeper than 8 levels and one with too many aliases, before running it', async () => {
    const deep = await gql(base, TEST_TOKEN, '{ products { items { devices { product { devices { product { devices { product { devices { id } } } } } } } } } }');
    assert.ok(deep.errors?.length, JSON.stringify(deep));
    assert.match(deep.errors![0]!.message, /depth/i);
    assert.equal(deep.data, undefined);
    const aliases = Array.from({ length: 20 }, (_, i) => `a${i}: plugins { id }`).join(' ');
    const many = await gql(base, TEST_TOKEN, `{ ${aliases} }`);
    assert.match(many.errors![0]!.message, /alias/i);
  });

  it('does not suggest field names to a client that guesses', async () => {
    const r = await gql(base, TEST_TOKEN, '{ plugin { idd } }');
    assert.ok(r.errors?.length);
    assert.doesNotMatch(JSON.stringify(r.errors), /Did you mean/);
  });

  it('serves GraphiQL to a browser with the token (?access_token=), 401 without it', async () => {
    const page = await fetch(`${base}/api/graphql?access_token=${TEST_TOKEN}`, { headers: { accept: 'text/html' } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /GraphiQL|graphiql/);
    const anonymous = await fetch(`${base}/api/graphql`, { headers: { accept: 'text/html' } });
    assert.equal(anonymous.status, 401);
    // a query in the URL does not take the token from it: only the page does
    const viaQuery = await fetch(`${base}/api/graphql?access_token=${TEST_TOKEN}&query=${encodeURIComponent('{ plugins { id } }')}`, { headers: { accept: 'application/json' } });
    assert.equal(viaQuery.status, 401);
  });

  it('uses the REST roles: a viewer reads, only an operator writes (403 forbidden); a bad token is 401', async () => {
    const call = async (method: string, p: string, body: unknown, token: string) =>
      (await fetch(`${base}/api${p}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })).json() as Promise<any>;
    await call('POST', '/users', { username: 'vic', password: 'viewer-password-1', role: 'viewer' }, TEST_TOKEN);
    await call('POST', '/users', { username: 'ops', password: 'operator-password-1', role: 'operator' }, TEST_TOKEN);
    const viewer = (await call('POST', '/auth/login', { username: 'vic', password: 'viewer-password-1' }, '')).token as string;
    const operator = (await call('POST', '/auth/login', { username: 'ops', password: 'operator-password-1' }, '')).token as string;
    assert.ok(viewer && operator);
    const read = await gql(base, viewer, '{ products { page { total } } }');
    assert.equal(read.status, 200);
    assert.equal(read.errors, undefined);
    const write = await gql(base, viewer, 'mutation { createProduct(input: { key: "by-viewer", name: "x" }) { id } }');
    assert.equal(write.errors?.[0]?.extensions?.code, 'forbidden');
    assert.match(write.errors![0]!.message, /needs the operator role; the token's role is viewer/);
    const ok = await gql(base, operator, 'mutation { createProduct(input: { key: "by-operator", name: "x" }) { key } }');
    assert.equal(ok.data?.createProduct.key, 'by-operator');
    assert.equal((await gql(base, 'no-such-token-0123456789', '{ plugins { id } }')).status, 401);
    // the GraphiQL page is for admins only: a viewer's and an operator's browser get 403
    for (const [token, status] of [[viewer, 403], [operator, 403], [TEST_TOKEN, 200]] as const) {
      const page = await fetch(`${base}/api/graphql?access_token=${token}`, { headers: { accept: 'text/html' } });
      assert.equal(page.status, status, `GraphiQL for ${token === TEST_TOKEN ? 'the admin' : token === viewer ? 'a viewer' : 'an operator'}`);
      await page.arrayBuffer();
    }
    // both writes are in the audit log, the refused one too
    await flux.users.audit.flush();
    const audit = await call('GET', '/audit?limit=50', undefined, TEST_TOKEN);
    const graphql = audit.items.filter((e: any) => e.action === 'graphql createProduct').map((e: any) => [e.username, e.target, e.status]);
    assert.deepEqual(graphql.sort(), [['ops', 'by-operator', 200], ['vic', 'by-viewer', 403]]);
  });

  it('answers a body over 256 KiB with 413 too_large', async () => {
    const res = await fetch(`${base}/api/graphql`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ query: `{ plugins { id } } # ${'x'.repeat(300 * 1024)}` }) });
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'too_large');
  });
});
