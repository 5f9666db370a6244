/**
 * Modbus end to end through the real FLUX process: the boiler of docs/modbus.md configured through
 * the API, polled from a real slave on loopback, through the uplink log (`/api/devices/{id}/raw`) and
 * the default flow (decode skipped, rules, store) to `/api/devices/{id}/latest`, the live feed, the
 * trace and the metrics; a write command; an exception.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';
import { startSlave, type TestSlave } from '../modbus/slave.ts';

describe('modbus end to end (real FLUX process, real slave)', function () {
  this.timeout(90_000);
  let flux: FluxProcess;
  let slave: TestSlave;

  before(async function () {
    slave = await startSlave('tcp');
    flux = await startFlux({ FLUX_MODBUS_SYNC_MS: '200' }, { timeoutMs: 60_000 });
  });
  after(async function () {
    await flux?.stop();
    await slave?.close();
  });

  const boiler = {
    interval_ms: 300,
    timeout_ms: 500,
    registers: [
      { property: 'temperature', function: 3, address: 0, type: 'int16', scale: 0.1 },
      { property: 'setpoint', function: 3, address: 1, type: 'int16', scale: 0.1 },
    ],
  };

  it('refuses a bad register map or endpoint with a 400 that names the field', async function () {
    const bad = await flux.api('POST', '/api/products', { key: 'bad1', name: 'bad', transport: { modbus: { registers: [{ property: 't', function: 7, address: 0 }] } } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'bad_request');
    assert.match(bad.body.error.message, /body\.transport\.modbus\.registers\.0\.function: must be 1 \(coils\), 2 \(discrete inputs\), 3 \(holding registers\) or 4 \(input registers\)/);
    const undeclared = await flux.api('POST', '/api/products', {
      key: 'bad2', name: 'bad', metadata: { properties: [{ id: 'temperature', type: 'float' }] }, transport: { modbus: boiler },
    });
    assert.equal(undeclared.status, 400);
    assert.match(undeclared.body.error.message, /'setpoint' is not a property of the thing model/);
    assert.equal((await flux.api('POST', '/api/products', { key: 'ok0', name: 'ok' })).status, 201);
    const dev = await flux.api('POST', '/api/devices', { id: 'bad-dev', product_id: 'ok0', transport: { modbus: { host: 'x y', unit: 300, mode: 'serial' } } });
    assert.equal(dev.status, 400);
    assert.match(dev.body.error.message, /body\.transport\.modbus\.host: must be a host name or an IP address/);
    const noHost = await flux.api('POST', '/api/devices', { id: 'bad-dev', product_id: 'ok0', transport: { modbus: { unit: 2 } } });
    assert.equal(noHost.status, 400);
    assert.match(noHost.body.error.message, /host: required unless the device reaches the bus through a gateway/);
  });

  it('polls the boiler into stored telemetry, writes its setpoint, and reports an exception as a failed command', async function () {
    slave.unit(1).holding[0] = 453; // 45.3 °C
    slave.unit(1).holding[1] = 400; // setpoint 40.0
    const product = await flux.api('POST', '/api/products', {
      key: 'boiler', name: 'Boiler',
      metadata: { properties: [{ id: 'temperature', type: 'float', unit: '°C' }, { id: 'setpoint', type: 'float', unit: '°C' }] },
      transport: { modbus: boiler },
    });
    assert.equal(product.status, 201, JSON.stringify(product.body));
    assert.equal(product.body.transport.modbus.offline_after, 3, 'defaults are filled in');
    // the live feed, watched before the device exists: its status and its polled values
    const feed: { type: string; values?: Record<string, number>; status?: string; transport?: string }[] = [];
    const ws = new WebSocket(`${flux.url.replace(/^http/, 'ws')}/api/ws?device=boiler_1`, { headers: { authorization: `Bearer ${flux.token}` } });
    ws.on('message', (d) => feed.push(JSON.parse(String(d))));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const device = await flux.api('POST', '/api/devices', { id: 'boiler_1', product_id: 'boiler', transport: { modbus: { host: '127.0.0.1', port: slave.port, unit: 1, mode: 'tcp' } } });
    assert.equal(device.status, 201, JSON.stringify(device.body));
    assert.deepEqual(device.body.transport, { modbus: { host: '127.0.0.1', port: slave.port, unit: 1, mode: 'tcp' } });

    const latest = await until('stored temperature', async () => {
      const r = await flux.api('GET', '/api/devices/boiler_1/latest');
      return r.status === 200 && r.body.values?.temperature === 45.3 ? r.body : undefined;
    }, 20_000);
    assert.equal(latest.values.setpoint, 40);
    assert.equal((await flux.api('GET', '/api/devices/boiler_1')).body.status, 'online');
    const live = await until('the polled values on the live feed', () => feed.find((e) => e.type === 'telemetry' && e.values?.temperature === 45.3));
    assert.deepEqual(live.values, { temperature: 45.3, setpoint: 40 });
    assert.ok(feed.some((e) => e.type === 'status' && e.status === 'online' && e.transport === 'modbus'), 'online on the live feed');
    ws.close();
    // through the durable uplink log like every ingress: the raw-traffic API lists the polls
    const raw = (await flux.api('GET', '/api/devices/boiler_1/raw?limit=5&encoding=base64')).body;
    assert.ok(raw.items.length > 0, 'polled values are in the uplink log');
    assert.equal(raw.items[0].transport, 'modbus');
    assert.equal(raw.items[0].type, 'properties');
    assert.deepEqual(JSON.parse(Buffer.from(raw.items[0].payload, 'base64').toString()).values, { temperature: 45.3, setpoint: 40 });

    // a finished message's trace (the newest may still be on its way)
    type Span = { stage: string; detail?: { skipped?: string } };
    const trace = await until('a stored message trace', async () =>
      ((await flux.api('GET', '/api/devices/boiler_1/trace?last=5')).body.items as { spans: Span[] }[]).find((t) => t.spans.some((s) => s.stage === 'store')),
    );
    assert.deepEqual(trace.spans.map((s) => s.stage).filter((s) => s === 'decode' || s === 'store'), ['decode', 'store']);
    assert.equal(trace.spans.find((s) => s.stage === 'decode')!.detail!.skipped, 'decoded by the modbus', 'the register map decoded; no plugin ran');

    const write = await flux.api('POST', '/api/devices/boiler_1/commands', { command: 'write', params: { property: 'setpoint', value: 42.5 } });
    assert.equal(write.status, 200, JSON.stringify(write.body));
    assert.equal(write.body.status, 'delivered');
    assert.equal(write.body.transport, 'modbus');
    assert.equal(slave.unit(1).holding[1], 425);
    await until('the new setpoint stored', async () => ((await flux.api('GET', '/api/devices/boiler_1/latest')).body.values?.setpoint === 42.5 ? true : undefined));

    slave.illegal.add(1);
    const refused = await flux.api('POST', '/api/devices/boiler_1/commands', { command: 'write', params: { property: 'setpoint', value: 50 } });
    assert.equal(refused.status, 502);
    assert.equal(refused.body.error.code, 'modbus_exception');
    assert.match(refused.body.error.message, /refused the write of setpoint: Modbus exception 2 \(Illegal Data Address\)/);
    slave.illegal.delete(1);
    const badValue = await flux.api('POST', '/api/devices/boiler_1/commands', { command: 'write', params: { property: 'setpoint', value: 1e6 } });
    assert.equal(badValue.status, 422);

    const status = (await flux.api('GET', '/api/modbus')).body;
    const ep = status.endpoints.find((e: { endpoint: string }) => e.endpoint === `tcp://127.0.0.1:${slave.port}`);
    assert.ok(ep.requests > 0 && ep.connected);
    assert.deepEqual(ep.units.map((u: { device_id: string; online: boolean }) => [u.device_id, u.online]), [['boiler_1', true]]);
    const metrics = (await fetch(`${flux.url}/api/metrics`, { headers: { authorization: `Bearer ${flux.token}` } }).then((r) => r.text()));
    assert.match(metrics, new RegExp(`flux_modbus_requests_total\\{endpoint="tcp://127\\.0\\.0\\.1:${slave.port}",service="flux"\\} \\d+`));
    assert.match(metrics, /flux_modbus_request_errors_total\{endpoint="[^"]+",reason="exception",service="flux"\} [1-9]\d*/);
    assert.match(metrics, /flux_modbus_request_seconds_bucket/);
  });

  it("a scene script's send_command writes a Modbus device's register", async function () {
    const productId = (await flux.api('GET', '/api/products/boiler')).body.id;
    const create = () =>
      flux.api('POST', '/api/rules', {
        name: 'boiler too hot: lower the setpoint', enabled: true, action_type: 'flow', product_id: productId,
        trigger_script: 'if msg.values.temperature > 60.0 {\n    send_command("boiler_1", "write", #{ property: "setpoint", value: 35.5 });\n    return true;\n}\nreturn false;\n',
      });
    // On a machine loaded far past its cores, compiling the script can hit the sandbox's own deadline
    // (a 500 "interrupted" from runtime/scripts): that is not what this test is about, so ask again.
    let rule = await create();
    for (let i = 0; i < 3 && rule.status === 500; i++) rule = await create();
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
    slave.unit(1).holding[0] = 612; // 61.2 °C: the next poll triggers the rule
    await until('the rule wrote the setpoint', () => (slave.unit(1).holding[1] === 355 ? true : undefined), 20_000);
    slave.unit(1).holding[0] = 453;
    await flux.api('DELETE', `/api/rules/${rule.body.id}`);
  });

  it('the `flux modbus` node reads and writes: the imported boiler example by device, and a flow by address', async function () {
    const auth = { authorization: `Bearer ${flux.token}` };
    const example = await (await fetch(`${flux.url}/editor/library/examples/flows/@flux-iot/nodes/modbus-boiler`, { headers: auth })).json();
    const adhoc = [
      { id: 'mb-tab', type: 'tab', label: 'modbus by address' },
      { id: 'mb-inject', type: 'inject', z: 'mb-tab', props: [{ p: 'payload' }], once: true, onceDelay: 0.2, payload: '', payloadType: 'date', wires: [['mb-read']] },
      { id: 'mb-read', type: 'flux modbus', z: 'mb-tab', op: 'read', host: '127.0.0.1', port: slave.port, mode: 'tcp', unit: 9, fn: 4, address: 3, datatype: 'float32', word_order: 'little', wires: [['mb-plus']] },
      { id: 'mb-plus', type: 'change', z: 'mb-tab', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'payload + 1', tot: 'jsonata' }], wires: [['mb-write']] },
      { id: 'mb-write', type: 'flux modbus', z: 'mb-tab', op: 'write', host: '127.0.0.1', port: slave.port, mode: 'tcp', unit: 9, fn: 3, address: 20, datatype: 'int16', scale: '0.5', wires: [[]] },
    ];
    // input register 3–4 of unit 9: 2.5 as float32, low word first
    const f = Buffer.alloc(4);
    f.writeFloatBE(2.5);
    slave.unit(9).input[3] = f.readUInt16BE(2);
    slave.unit(9).input[4] = f.readUInt16BE(0);
    const current = await (await fetch(`${flux.url}/editor/flows`, { headers: auth })).json();
    const deploy = await fetch(`${flux.url}/editor/flows`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify([...(current as object[]), ...(example as object[]), ...adhoc]),
    });
    assert.equal(deploy.status, 204);
    // read 2.5, add 1, write 3.5 as int16 × 0.5 → 7 in holding register 20
    await until('the flow wrote register 20', () => (slave.unit(9).holding[20] === 7 ? true : undefined));

    slave.unit(1).holding[0] = 480;
    const read = await until('the example answers', async () => {
      const r = await fetch(`${flux.url}/flows/modbus/boiler_1`, { headers: auth });
      return r.status === 200 ? ((await r.json()) as Record<string, number>) : undefined;
    });
    assert.equal(read.temperature, 48);
    // the example's endpoints need a token: anyone who may read (viewer) or change (operator) devices
    assert.equal((await fetch(`${flux.url}/flows/modbus/boiler_1/setpoint`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"value":1}' })).status, 401);
    const write = await fetch(`${flux.url}/flows/modbus/boiler_1/setpoint`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ value: 39.5 }) });
    assert.equal(write.status, 200, await write.clone().text());
    assert.deepEqual(await write.json(), { setpoint: 39.5 });
    assert.equal(slave.unit(1).holding[1], 395);
    const missing = await fetch(`${flux.url}/flows/modbus/nobody`, { headers: auth });
    assert.equal(missing.status, 502);
    assert.match(((await missing.json()) as { error: { message: string } }).error.message, /not a polled Modbus device/);
  });
});
