/**
 * Every API route × every role → the expected status, with the route list taken from the API's own
 * route table: a route added without a role declaration fails here (and mount() refuses it).
 * Expected: no token → 401; a role below the route's → 403 `forbidden`; at or above → past the
 * check (any answer but 401/403, and never a 500).
 */
import assert from 'node:assert/strict';
import express from 'express';
import { RouteTable } from '../../runtime/api/index.ts';
import { ROLES, roleAtLeast, type Role } from '../../runtime/users/index.ts';
import { TEST_TOKEN } from '../helpers/flux-process.ts';
import { startTestFlux, type TestFlux } from './helpers.ts';

/** Placeholder values for path parameters: ids that exist nowhere (so nothing real is changed). */
const PARAMS: Record<string, string> = { id: 'no_such_thing', username: 'no-such-user', msgId: 'no-such-msg', file: 'no-such-file.js', segment: 'no-such.ts' };

describe('role matrix: every route × every role', function () {
  this.timeout(120_000);
  let f: TestFlux;
  const tokens: Record<Role, string> = {} as Record<Role, string>;
  /** personal tokens: for logout, which would end the session the other calls use */
  const personal: Record<Role, string> = {} as Record<Role, string>;

  before(async function () {
    f = await startTestFlux();
    for (const role of ROLES) {
      tokens[role] = await f.userToken(`matrix-${role}`, role);
      const t = await f.call('POST', '/tokens', { name: `matrix ${role}`, role }, tokens[role]);
      assert.equal(t.status, 201);
      personal[role] = t.body.token;
    }
  });

  after(async function () {
    await f?.stop();
  });

  it('has a role declared on every route that needs a token', function () {
    const routes = f.flux.api.routes.routes;
    assert.ok(routes.length > 60, `the route table lists every route (${routes.length})`);
    const undeclared = routes.filter((r) => r.auth !== false && !(ROLES as readonly string[]).includes(r.role ?? ''));
    assert.deepEqual(undeclared.map((r) => `${r.method} ${r.path}`), []);
    const publicRoutes = routes.filter((r) => r.auth === false).map((r) => `${r.method} ${r.path}`);
    assert.deepEqual(publicRoutes.sort(), ['get /health', 'get /openapi.json', 'get /streams/_player/:file', 'post /auth/login', 'post /devices/:id/uplink'].sort());
  });

  it('declares the roles of the policy: reads viewer, changes operator, users, audit and the whole project (export, import) admin, own session and tokens any user', function () {
    const SELF = ['post /auth/logout', 'get /auth/me', 'put /auth/password', 'get /tokens', 'post /tokens', 'delete /tokens/:id'];
    // the project export carries every plugin's bytes and the flows; an import replaces the flows
    const ADMIN = /^\/(users|audit|project)(\/|$)/;
    const policy = (method: string, path: string): Role => {
      if (SELF.includes(`${method} ${path}`)) return 'viewer';
      if (ADMIN.test(path)) return 'admin';
      return method === 'get' ? 'viewer' : 'operator';
    };
    const off = f.flux.api.routes.routes.filter((r) => r.auth !== false && r.role !== policy(r.method, r.path)).map((r) => `${r.method} ${r.path}: ${r.role}, policy ${policy(r.method, r.path)}`);
    assert.deepEqual(off, []);
  });

  it('refuses to mount a route without a role', function () {
    const table = new RouteTable().add({ method: 'get', path: '/new-thing', tag: 'x', summary: 'a route someone forgot to declare', handler: () => ({}) });
    assert.throws(() => table.mount(express.Router(), () => (_req, _res, next) => next()), /GET \/new-thing declares no role/);
  });

  it('answers each route with 401, 403 or past the check, as the route and the role say', async function () {
    const wrong: string[] = [];
    let checked = 0;
    for (const r of f.flux.api.routes.routes) {
      const path = r.path.replace(/:([A-Za-z_]+)/g, (_m, name: string) => PARAMS[name] ?? 'x');
      const body = r.method === 'get' ? undefined : {};
      const expect = (who: Role | 'none'): string => {
        if (r.auth === false) return 'past';
        if (who === 'none') return '401';
        return roleAtLeast(who, r.role!) ? 'past' : '403';
      };
      for (const who of ['none', ...ROLES] as const) {
        const token = who === 'none' ? null : r.path === '/auth/logout' ? personal[who] : tokens[who];
        const a = await f.call(r.method.toUpperCase(), path, body, token);
        // A public route never asks for a user's token (the device uplink asks for its device secret).
        const deviceAuth = r.auth === false && a.status === 401 && /device secret/.test(a.body?.error?.message ?? '');
        const got = a.status === 401 && !deviceAuth ? '401' : a.status === 403 ? '403' : 'past';
        checked++;
        if (got !== expect(who) || a.status >= 500) wrong.push(`${r.method.toUpperCase()} ${r.path} as ${who}: ${a.status} (expected ${expect(who)}) ${JSON.stringify(a.body).slice(0, 200)}`);
        if (got === '403') assert.equal(a.body.error.code, 'forbidden');
      }
    }
    assert.deepEqual(wrong, []);
    assert.ok(checked >= 4 * 60);
  });

  it('lets the admin token act as admin on every route', async function () {
    for (const path of ['/users', '/audit', '/tokens', '/products']) assert.equal((await f.call('GET', path, undefined, TEST_TOKEN)).status, 200, path);
    const me = await f.call('GET', '/auth/me', undefined, TEST_TOKEN);
    assert.deepEqual(me.body, { username: 'admin-token', role: 'admin', via: 'admin-token' });
  });

  it('gives the roles what they are for: operators change devices, rules and alarms but not users; viewers only read', async function () {
    const product = await f.call('POST', '/products', { key: 'matrix_p', name: 'P' }, tokens.operator);
    assert.equal(product.status, 201);
    assert.equal((await f.call('POST', '/devices', { id: 'matrix_d', product_id: 'matrix_p' }, tokens.operator)).status, 201);
    assert.equal((await f.call('POST', '/devices', { id: 'matrix_v', product_id: 'matrix_p' }, tokens.viewer)).status, 403);
    assert.equal((await f.call('GET', '/devices/matrix_d', undefined, tokens.viewer)).status, 200);
    assert.equal((await f.call('POST', '/users', { username: 'sneaky', password: 'sneaky-password', role: 'admin' }, tokens.operator)).status, 403);
    assert.equal((await f.call('GET', '/audit', undefined, tokens.operator)).status, 403);
    assert.equal((await f.call('DELETE', '/devices/matrix_d', undefined, tokens.operator)).status, 204);
  });
});
