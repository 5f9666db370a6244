/**
 * The editor's sign-in backed by FLUX's users, in the real process: an admin's name and password
 * work, an operator, a viewer and an unknown name are refused; the break-glass login (user `admin`,
 * the admin token as password) works and only under that name; API tokens of admins open the
 * editor's admin API, others do not; demoting an admin closes the editor; logins and deploys are
 * in the audit log. Also: the first start prints the first admin's password once.
 */
import assert from 'node:assert/strict';
import { startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';

describe('the editor login with FLUX users', function () {
  this.timeout(90_000);
  let flux: FluxProcess;
  let firstPassword: string;

  const editorLogin = async (username: string, password: string) => {
    const res = await fetch(`${flux.url}/editor/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-editor', grant_type: 'password', scope: '*', username, password }),
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: string };
    return { status: res.status, token: body.access_token };
  };
  const flows = (token: string) => fetch(`${flux.url}/editor/flows`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);

  before(async function () {
    flux = await startFlux({}, { dataDir: tempDir() });
    const m = /flux admin user "admin", password \(shown once[^)]*\): (\S+)/.exec(flux.output());
    assert.ok(m, `the first admin's password is printed:\n${flux.output()}`);
    firstPassword = m[1]!;
    for (const [username, role] of [['ops', 'operator'], ['eve', 'viewer'], ['root2', 'admin']]) {
      const r = await flux.api('POST', '/api/users', { username, password: `${username}-password`, role });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
  });

  after(async function () {
    await flux?.stop();
  });

  it('signs in an admin user with the name and password, and the first admin with the printed password', async function () {
    for (const [name, password] of [['admin', firstPassword], ['root2', 'root2-password']] as const) {
      const r = await editorLogin(name, password);
      assert.equal(r.status, 200, name);
      assert.equal(await flows(r.token!), 200, `${name}'s editor token opens the admin API`);
    }
    const api = await fetch(`${flux.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'admin', password: firstPassword }) });
    assert.equal(api.status, 200, 'the printed password logs in to the API too');
  });

  it('refuses an operator, a viewer, an unknown user and a wrong password', async function () {
    for (const [name, password] of [['ops', 'ops-password'], ['eve', 'eve-password'], ['nobody', 'nobody-password'], ['root2', 'wrong-password']]) {
      const r = await editorLogin(name!, password!);
      assert.notEqual(r.status, 200, name);
      assert.equal(r.token, undefined);
    }
  });

  it('keeps the break-glass login: user admin with the admin token, under that name only', async function () {
    const r = await editorLogin('admin', flux.token);
    assert.equal(r.status, 200);
    assert.equal(await flows(r.token!), 200);
    assert.notEqual((await editorLogin('ops', flux.token)).status, 200, 'any other name with the token is refused');
    assert.notEqual((await editorLogin('someone', flux.token)).status, 200);
  });

  it("opens the editor's admin API to admin API tokens only, and closes it when an admin is demoted", async function () {
    const opsLogin = await flux.api('POST', '/api/auth/login', { username: 'ops', password: 'ops-password' });
    assert.equal(await flows(opsLogin.body.token), 401, "an operator's session token");
    const rootLogin = await flux.api('POST', '/api/auth/login', { username: 'root2', password: 'root2-password' });
    assert.equal(await flows(rootLogin.body.token), 200, "an admin's session token");
    const editor = await editorLogin('root2', 'root2-password');
    assert.equal(await flows(editor.token!), 200);
    assert.equal((await flux.api('PATCH', '/api/users/root2', { role: 'operator' })).status, 200);
    assert.equal(await flows(editor.token!), 401, "the demoted user's editor session ends");
    assert.equal(await flows(rootLogin.body.token), 401, "and the API session's editor access");
  });

  it('records editor logins and flow deploys in the audit log, with who', async function () {
    const r = await editorLogin('admin', firstPassword);
    const current = await fetch(`${flux.url}/editor/flows`, { headers: { authorization: `Bearer ${r.token}`, 'Node-RED-API-Version': 'v2' } }).then((x) => x.json() as Promise<{ flows: unknown[]; rev: string }>);
    const deploy = await fetch(`${flux.url}/editor/flows`, {
      method: 'POST',
      headers: { authorization: `Bearer ${r.token}`, 'content-type': 'application/json', 'Node-RED-API-Version': 'v2', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify({ flows: current.flows, rev: current.rev }),
    });
    assert.equal(deploy.status, 200);
    const audit = await until('the deploy in the audit log', async () => {
      const a = await flux.api('GET', '/api/audit?limit=200');
      const items = a.body.items as { action: string; username: string; target: string; status: number }[];
      return items.some((i) => i.action === 'flows.deploy') ? items : undefined;
    });
    assert.ok(audit.some((i) => i.action === 'flows.deploy' && i.username === 'admin'), JSON.stringify(audit.slice(0, 5)));
    assert.ok(audit.some((i) => i.action === 'login' && i.target === 'editor' && i.username === 'root2'));
    assert.ok(audit.some((i) => i.action === 'login_failed' && i.target === 'editor' && i.username === 'nobody'));
  });
});
