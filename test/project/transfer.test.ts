/**
 * `flux export` on one real FLUX and `flux import` into a fresh one: the second processes the same
 * uplink (mosquitto_pub of a Modbus frame as the device, with its new secret) the same way — decoded
 * by the moved plugin, stored, and alarmed by the moved rule. And the import refuses hostile or
 * conflicting documents with 4xx before it writes anything.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { startFlux, tempDir, ROOT, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';

const run = promisify(execFile);
const FRAME = Buffer.from('01030201C50000', 'hex'); // unit 1 → sensor_1, temperature 45.3

function publish(flux: FluxProcess, deviceId: string, secret: string): void {
  const dir = tempDir('flux-frame-');
  fs.writeFileSync(path.join(dir, 'frame.bin'), FRAME);
  execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(flux.mqtt), '-i', deviceId, '-u', deviceId, '-P', secret, '-q', '1', '-t', `/thermo/${deviceId}/properties/report`, '-f', path.join(dir, 'frame.bin')], { timeout: 10_000, stdio: 'pipe' });
}

async function processed(flux: FluxProcess): Promise<{ latest: unknown; alarms: { rule_name?: string; level: string; message: string; device_id: string }[] }> {
  return until(
    'the uplink stored and alarmed',
    async () => {
      const latest = await flux.api('GET', '/api/devices/sensor_1/latest');
      const alarms = await flux.api('GET', '/api/alarms');
      const values = latest.body?.values ?? latest.body;
      if (latest.status !== 200 || !JSON.stringify(values).includes('45.3') || !alarms.body?.items?.length) return undefined;
      return { latest: values, alarms: alarms.body.items };
    },
    20_000,
  );
}

async function cli(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [path.join(ROOT, 'runtime', 'cli.ts'), ...args], { cwd: ROOT, env: { ...process.env, FLUX_TOKEN: '', FLUX_ADMIN_TOKEN: '' }, timeout: 60_000 });
}

describe('flux export / flux import between two FLUX processes', function () {
  this.timeout(180_000);
  let source: FluxProcess;
  let target: FluxProcess;
  let sourceSecret: string;
  const dir = tempDir('flux-project-');
  const file = path.join(dir, 'project.json');

  before(async function () {
    this.timeout(120_000);
    // empty plugin folders: the plugin reaches the target only through the import
    [source, target] = await Promise.all([startFlux({ FLUX_PLUGINS_DIR: tempDir('flux-plugins-') }), startFlux({ FLUX_PLUGINS_DIR: tempDir('flux-plugins-') })]);
    const wasm = fs.readFileSync(path.join(ROOT, 'plugins', 'dist', 'modbus.wasm'));
    assert.equal((await source.api('PUT', '/api/plugins/modbus', wasm, { 'content-type': 'application/wasm' })).status, 201);
    const product = await source.api('POST', '/api/products', { key: 'thermo', name: 'Thermometer', protocol_plugin_id: 'modbus', metadata: { properties: [{ id: 'temperature', type: 'float', unit: '°C' }] } });
    assert.equal(product.status, 201, JSON.stringify(product.body));
    const device = await source.api('POST', '/api/devices', { id: 'sensor_1', product_id: product.body.id, name: 'Boiler room', tags: { room: 'b1' } });
    assert.equal(device.status, 201);
    sourceSecret = device.body.secret;
    // a gateway and its child: the import creates the gateway first
    assert.equal((await source.api('POST', '/api/devices', { id: 'zz_gateway', product_id: product.body.id, is_gateway: true })).status, 201);
    assert.equal((await source.api('POST', '/api/devices', { id: 'aa_child', product_id: product.body.id, gateway_id: 'zz_gateway' })).status, 201);
    const rule = await source.api('POST', '/api/rules', { name: 'too hot', trigger_script: 'return msg.values.temperature > 45;', action_type: 'alarm', action_config: { level: 'critical', message: 'hot: {{values.temperature}}' }, product_id: product.body.id });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
  });

  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  it('exports the project with the CLI: plugin bytes with version and sha256, devices without secrets, the flows', async () => {
    const { stderr } = await cli(['export', '-o', file, '--url', source.url, '--token', source.token]);
    assert.match(stderr, /exported 1 products, 3 devices, 1 rules, 1 plugins, \d+ flow nodes/);
    const text = fs.readFileSync(file, 'utf8');
    const doc = JSON.parse(text);
    assert.equal(doc.format, 'flux-project');
    assert.equal(doc.plugins[0].id, 'modbus');
    assert.equal(doc.plugins[0].version, 1);
    assert.match(doc.plugins[0].sha256, /^[0-9a-f]{64}$/);
    assert.ok(!text.includes(sourceSecret), 'no device secret in the file');
    assert.ok(!/secret/.test(JSON.stringify(doc.devices)), 'no secret field on devices');
    assert.ok(doc.flows.some((n: any) => n.type === 'flux device in'), 'the default flow is in it');
    // the same document from the API (admin token), as a download
    const api = await source.api('GET', '/api/project/export');
    assert.equal(api.status, 200);
    assert.match(api.headers.get('content-disposition') ?? '', /attachment/);
    assert.equal((await fetch(`${source.url}/api/project/export`)).status, 401);
    // an operator may change devices and rules, not take or replace the whole project
    assert.equal((await source.api('POST', '/api/users', { username: 'olga', password: 'olga-password-1', role: 'operator' })).status, 201);
    const login = await source.api('POST', '/api/auth/login', { username: 'olga', password: 'olga-password-1' });
    const asOperator = { authorization: `Bearer ${login.body.token}` };
    assert.equal((await fetch(`${source.url}/api/project/export`, { headers: asOperator })).status, 403);
    const refused = await fetch(`${source.url}/api/project/import`, { method: 'POST', headers: { ...asOperator, 'content-type': 'application/json' }, body: text });
    assert.equal(refused.status, 403);
  });

  it('imports it into a fresh instance, which processes the same uplink the same way', async () => {
    const secrets = path.join(dir, 'secrets.json');
    const { stderr } = await cli(['import', file, '--url', target.url, '--token', target.token, '--secrets', secrets]);
    assert.match(stderr, /imported 1 products, 3 devices, 1 rules, 1 plugins/);
    assert.equal(fs.statSync(secrets).mode & 0o777, 0o600);
    const newSecrets = JSON.parse(fs.readFileSync(secrets, 'utf8')) as { id: string; secret: string }[];
    assert.deepEqual(newSecrets.map((s) => s.id).sort(), ['aa_child', 'sensor_1', 'zz_gateway']);
    const secret = newSecrets.find((s) => s.id === 'sensor_1')!.secret;
    assert.notEqual(secret, sourceSecret, 'a new secret');
    assert.equal((await target.api('GET', '/api/devices/aa_child')).body.gateway_id, 'zz_gateway');
    const plugin = await target.api('GET', '/api/plugins/modbus');
    assert.equal(plugin.body.versions[0].sha256, (await source.api('GET', '/api/plugins/modbus')).body.versions[0].sha256);

    // the old secret does not open the new instance
    assert.throws(() => publish(target, 'sensor_1', sourceSecret));
    publish(source, 'sensor_1', sourceSecret);
    await until('the imported flows to run', async () => ((await target.api('GET', '/api/health')).body?.components?.flows?.ok ? true : undefined));
    publish(target, 'sensor_1', secret);
    const [a, b] = await Promise.all([processed(source), processed(target)]);
    assert.deepEqual(b.latest, a.latest);
    const pick = (al: typeof a.alarms) => al.map((x) => ({ level: x.level, message: x.message, device_id: x.device_id }));
    assert.deepEqual(pick(b.alarms), pick(a.alarms));
    assert.deepEqual(pick(b.alarms), [{ level: 'critical', message: 'hot: 45.3', device_id: 'sensor_1' }]);
  });

  it('refuses a second import of the same project (409) and writes nothing', async () => {
    const before = (await target.api('GET', '/api/rules')).body.items.length;
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    const again = await target.api('POST', '/api/project/import', doc);
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'conflict');
    assert.match(again.body.error.message, /thermo/);
    assert.equal((await target.api('GET', '/api/rules')).body.items.length, before);
    // the CLI says so and exits 1
    await assert.rejects(cli(['import', file, '--url', target.url, '--token', target.token]), (err: any) => err.code === 1 && /409 conflict/.test(err.stderr));
  });

  it('refuses hostile documents with 4xx and a clear code', async () => {
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    const fresh = { ...doc, products: doc.products.map((p: any) => ({ ...p, key: 'other' })), devices: [], rules: [], flows: undefined };
    const cases: [string, unknown, number, string | RegExp][] = [
      ['not a project', { hello: 1 }, 400, 'bad_request'],
      ['wrong bytes for the sha256', { ...fresh, plugins: [{ ...doc.plugins[0], id: 'other-plugin', wasm: Buffer.from('not wasm at all').toString('base64') }] }, 400, /sha256/],
      ['a plugin id that is a path', { ...fresh, plugins: [{ ...doc.plugins[0], id: '../../etc' }] }, 400, /invalid_id|bad_request/],
      ['a device id with a slash', { ...fresh, devices: [{ id: 'a/b', product_id: doc.products[0].id }] }, 400, 'bad_request'],
      ['a device of a product not in the project', { ...fresh, devices: [{ id: 'lost_1', product_id: 'nope' }] }, 400, /not a product of the project/],
      ['a gateway that is not there', { ...fresh, devices: [{ id: 'lost_2', product_id: doc.products[0].id, gateway_id: 'nobody' }] }, 400, /gateways/],
      ['too many flow nodes', { ...fresh, flows: Array.from({ length: 20_001 }, (_, i) => ({ id: `n${i}`, type: 'comment' })) }, 400, 'bad_request'],
    ];
    for (const [what, body, status, code] of cases) {
      const r = await target.api('POST', '/api/project/import', body);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      if (typeof code === 'string') assert.equal(r.body.error.code, code, what);
      else assert.match(`${r.body.error.code} ${r.body.error.message}`, code, what);
    }
    assert.equal((await target.api('GET', '/api/products?key=other')).body.items.length, 0, 'nothing written');
    // a rule that does not compile fails after the product and device were written: both are removed again
    const failing = await target.api('POST', '/api/project/import', { ...fresh, devices: [{ id: 'undo_1', product_id: doc.products[0].id }], rules: [{ name: 'broken', trigger_script: 'if (', action_type: 'flow' }] });
    assert.equal(failing.status, 400, JSON.stringify(failing.body));
    assert.equal((await target.api('GET', '/api/products?key=other')).body.items.length, 0, 'the product was removed');
    assert.equal((await target.api('GET', '/api/devices/undo_1')).status, 404, 'the device was removed');
    // flows with an http in path FLUX serves itself: refused like a deploy, naming node and path, before any write
    for (const url of ['/api/custom', '/editor/x', '/console', '/mqtt']) {
      const reserved = await target.api('POST', '/api/project/import', { ...fresh, flows: [{ id: 'tab1', type: 'tab', label: 'api' }, { id: 'sneaky_in', z: 'tab1', type: 'http in', name: 'sneaky', url, method: 'post', wires: [[]] }] });
      assert.equal(reserved.status, 400, `${url}: ${JSON.stringify(reserved.body)}`);
      assert.equal(reserved.body.error.code, 'flow_path_reserved');
      assert.match(reserved.body.error.message, new RegExp(`http in node 'sneaky' \\(POST ${url.replace(/\//g, '\\/')}\\)`));
      assert.match(reserved.body.error.message, new RegExp(`the path \\S*${url.replace(/\//g, '\\/')}\\b`));
    }
    assert.equal((await target.api('GET', '/api/products?key=other')).body.items.length, 0, 'nothing written');
    assert.ok(!(await target.api('GET', '/api/flows/openapi.json')).body.paths['/flows/api/custom'], 'the running flows stay');
    const huge = Buffer.alloc(97 * 2 ** 20, 0x20);
    const big = await fetch(`${target.url}/api/project/import`, { method: 'POST', headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/json' }, body: huge });
    assert.equal(big.status, 413);
  });
});
