/** The example flows in flows/examples: listed in the editor's import menu, and working once imported. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import mqtt from 'mqtt';
import { startFlux, ROOT, type FluxProcess } from '../helpers/flux-process.ts';

describe('example flows', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  const auth = () => ({ authorization: `Bearer ${flux.token}` });

  before(async function () {
    flux = await startFlux();
  });

  after(async function () {
    await flux?.stop();
  });

  it("are offered in the editor's Import → Examples menu under FLUX's node module", async function () {
    const list = await (await fetch(`${flux.url}/editor/library/examples/flows/@flux-iot/nodes`, { headers: auth() })).json();
    const names = (list as ({ fn?: string } | string)[]).map((e) => (typeof e === 'string' ? e : e.fn));
    for (const f of fs.readdirSync(path.join(ROOT, 'flows', 'examples'))) assert.ok(names.includes(f.replace(/\.json$/, '')), `${f} is listed (got ${JSON.stringify(list)})`);
  });

  it('serves a device\'s latest values from the imported "REST endpoint" example', async function () {
    const example = await (await fetch(`${flux.url}/editor/library/examples/flows/@flux-iot/nodes/http-latest-values`, { headers: auth() })).json();
    const current = await (await fetch(`${flux.url}/editor/flows`, { headers: auth() })).json();
    const deploy = await fetch(`${flux.url}/editor/flows`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify([...(current as object[]), ...(example as object[])]),
    });
    assert.equal(deploy.status, 204);
    assert.equal((await flux.api('POST', '/api/products', { key: 'thermo', name: 'Thermo' })).status, 201);
    const dev = await flux.api('POST', '/api/devices', { id: 'thermo_1', product_id: 'thermo' });
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { clientId: 'thermo_1', username: 'thermo_1', password: dev.body.secret, reconnectPeriod: 0 });
    await client.publishAsync('/thermo/thermo_1/properties/report', JSON.stringify({ values: { temperature: 21.5, humidity: 40 } }), { qos: 1 });
    await client.endAsync();
    let body: any;
    for (let i = 0; i < 100 && body?.values?.temperature === undefined; i++) {
      const res = await fetch(`${flux.url}/flows/devices/thermo_1/latest-values`, { headers: { authorization: `Bearer ${flux.token}` } });
      if (res.status === 200) body = await res.json();
      if (body?.values?.temperature === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(body.values, { temperature: 21.5, humidity: 40 });
    assert.equal((await fetch(`${flux.url}/flows/devices/thermo_1/latest-values`)).status, 401, 'the example endpoint needs the token');
    const missing = await fetch(`${flux.url}/flows/devices/nobody/latest-values`, { headers: { authorization: `Bearer ${flux.token}` } });
    assert.equal(missing.status, 200, 'an unknown device has no values (the store answers empty)');
    assert.deepEqual((await missing.json()).values, {});
  });
});
