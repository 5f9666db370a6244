/**
 * Gateways speaking for their children (docs/broker.md "Gateways and child devices"), end to end in
 * the real FLUX process: a gateway reports for two Modbus units (the seed's frame and
 * plugins/dist/modbus.wasm over MQTT; Modbus RTU and plugins/dist/modbus-rtu.wasm over TCP), commands
 * to a child leave through the gateway's connection in bytes of the gateway's plugin, children's
 * status follows the gateway, auto-registration is off unless the product turns it on, and a gateway
 * cannot report for another gateway's child or a device that is not its child.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import mqtt from 'mqtt';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { until as untilDefault } from '../helpers/wait.ts';

/** generous on a loaded machine: the first decode starts a plugin worker */
const until = <T>(what: string, fn: () => Promise<T | undefined> | T | undefined) => untilDefault(what, fn, 60_000);
import { encodeFrame, parseFraming } from '../../runtime/ingress/index.ts';

/** The seed's Modbus frame for `unit` (modbus.wasm: `sensor_<unit>`, temperature = register / 10). */
const seedFrame = (unit: number, tenths: number) => Buffer.from([unit, 0x03, 0x02, tenths >> 8, tenths & 0xff, 0x00, 0x00]);

function crc16modbus(b: Buffer): number {
  let crc = 0xffff;
  for (const x of b) {
    crc ^= x;
    for (let i = 0; i < 8; i++) crc = crc & 1 ? (crc >> 1) ^ 0xa001 : crc >> 1;
  }
  return crc;
}
/** A Modbus RTU read-holding-registers response of `unit` (modbus-rtu.wasm: `unit_<unit>`, reg_0, reg_1…). */
function rtuResponse(unit: number, registers: number[]): Buffer {
  const body = Buffer.alloc(3 + registers.length * 2);
  body[0] = unit;
  body[1] = 0x03;
  body[2] = registers.length * 2;
  registers.forEach((r, i) => body.writeUInt16BE(r, 3 + i * 2));
  const crc = crc16modbus(body);
  return Buffer.concat([body, Buffer.from([crc & 0xff, crc >> 8])]);
}

describe('security: gateways and child devices, end to end', function () {
  this.timeout(180_000);
  let flux: FluxProcess;
  const secret: Record<string, string> = {};

  const device = async (body: Record<string, unknown>) => {
    const r = await flux.api('POST', '/api/devices', body);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    secret[body.id as string] = r.body.secret;
  };
  const latest = async (id: string) => {
    const r = await flux.api('GET', `/api/devices/${id}/latest`);
    return r.status === 200 && Object.keys(r.body.values ?? {}).length ? (r.body.values as Record<string, number>) : undefined;
  };
  const status = async (id: string) => (await flux.api('GET', `/api/devices/${id}`)).body.status as string;
  const refusedCount = async (reason: string) => {
    const text = await (await fetch(`${flux.url}/api/metrics`, { headers: { authorization: `Bearer ${flux.token}` } })).text();
    return Number(new RegExp(`^flux_uplink_refused_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  };

  before(async function () {
    flux = await startFlux({}, { timeoutMs: 60_000 });
    const products = [
      { key: 'boiler', name: 'Boiler sensor', metadata: { properties: [{ id: 'temperature', type: 'float' }] } },
      { key: 'seed_gw', name: 'Modbus gateway (seed frames over MQTT)', protocol_plugin_id: 'modbus' },
      { key: 'rtu_unit', name: 'Modbus RTU unit', metadata: { properties: [{ id: 'reg_0', type: 'int' }, { id: 'reg_1', type: 'int' }] } },
      { key: 'dtu', name: 'Modbus RTU gateway over TCP', protocol_plugin_id: 'modbus-rtu', transport: { tcp: { port: 0 } } },
      { key: 'dtu_mqtt', name: 'Modbus RTU gateway over MQTT', protocol_plugin_id: 'modbus-rtu' },
      { key: 'auto_gw', name: 'Gateway that registers its children', protocol_plugin_id: 'modbus', auto_register_children: true, child_product_id: 'boiler' },
    ];
    for (const p of products) assert.equal((await flux.api('POST', '/api/products', p)).status, 201);
    await device({ id: 'gw_seed', product_id: 'seed_gw', is_gateway: true });
    await device({ id: 'sensor_1', product_id: 'boiler', gateway_id: 'gw_seed' });
    await device({ id: 'sensor_2', product_id: 'boiler', gateway_id: 'gw_seed' });
    await device({ id: 'sensor_3', product_id: 'boiler' }); // a device of its own, nobody's child
    await device({ id: 'gw_tcp', product_id: 'dtu', is_gateway: true });
    await device({ id: 'unit_1', product_id: 'rtu_unit', gateway_id: 'gw_tcp' });
    await device({ id: 'unit_2', product_id: 'rtu_unit', gateway_id: 'gw_tcp' });
    await device({ id: 'gw_mqtt', product_id: 'dtu_mqtt', is_gateway: true });
    await device({ id: 'unit_3', product_id: 'rtu_unit', gateway_id: 'gw_mqtt' });
    await device({ id: 'unit_4', product_id: 'rtu_unit', gateway_id: 'gw_mqtt' });
    await device({ id: 'gw_auto', product_id: 'auto_gw', is_gateway: true });
  });

  after(async function () {
    await flux?.stop();
  });

  it('a gateway reports for its two Modbus units (seed frames, modbus.wasm, MQTT); their status follows its connection', async function () {
    const gw = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { clientId: 'gw_seed', username: 'gw_seed', password: secret.gw_seed, reconnectPeriod: 0 });
    await until('children online with their gateway', async () => ((await status('sensor_1')) === 'online' && (await status('sensor_2')) === 'online') || undefined);
    await gw.publishAsync('/seed_gw/gw_seed/properties/report', seedFrame(1, 453), { qos: 1 });
    await gw.publishAsync('/seed_gw/gw_seed/properties/report', seedFrame(2, 218), { qos: 1 });
    const before = await refusedCount('not_a_child');
    await gw.publishAsync('/seed_gw/gw_seed/properties/report', seedFrame(3, 999), { qos: 1 }); // sensor_3 is not its child
    await gw.publishAsync('/seed_gw/gw_seed/properties/report', seedFrame(77, 999), { qos: 1 }); // sensor_77 does not exist
    assert.equal((await until('sensor_1 stored', () => latest('sensor_1'))).temperature, 45.3);
    assert.equal((await until('sensor_2 stored', () => latest('sensor_2'))).temperature, 21.8);
    await until('two refusals counted', async () => ((await refusedCount('not_a_child')) >= before + 2) || undefined);
    assert.equal(await latest('sensor_3'), undefined, 'a gateway wrote telemetry of a device that is not its child');
    assert.equal(await latest('gw_seed'), undefined, "the children's readings are not the gateway's");
    assert.equal((await flux.api('GET', '/api/devices/sensor_77')).status, 404, 'auto-registration is off by default');
    await gw.endAsync();
    await until('children offline with their gateway', async () => ((await status('sensor_1')) === 'offline' && (await status('sensor_2')) === 'offline') || undefined);
    assert.equal(await status('sensor_3'), 'offline');
  });

  it('over TCP: a gateway reports for unit 1 and 2, and a command to unit 2 leaves through its connection, encoded by its plugin', async function () {
    // the ingress opens a product's TCP port within 5 s of its creation
    const port = await until('the dtu product to have a TCP port', async () => (await flux.api('GET', '/api/health')).body.components?.ingress?.ports?.dtu as number | undefined);
    const framing = parseFraming({ type: 'length', offset: 2, bytes: 1, adjust: 2 }); // modbus-rtu's meta().framing
    const s = net.connect({ port, host: '127.0.0.1' });
    const received: Buffer[] = [];
    s.on('data', (d) => received.push(d));
    await new Promise((r, j) => (s.once('connect', r), s.once('error', j)));
    s.write(encodeFrame(framing, Buffer.from(JSON.stringify({ device_id: 'gw_tcp', secret: secret.gw_tcp }))));
    await until('the login answer', async () => Buffer.concat(received).includes('"login":"ok"') || undefined);
    received.length = 0;
    await until('units online with their gateway', async () => ((await status('unit_1')) === 'online' && (await status('unit_2')) === 'online') || undefined);
    s.write(Buffer.concat([rtuResponse(1, [234, 453]), rtuResponse(2, [7, 8]), rtuResponse(9, [1, 1])]));
    assert.deepEqual(await until('unit_1 stored', () => latest('unit_1')), { reg_0: 234, reg_1: 453 });
    assert.deepEqual(await until('unit_2 stored', () => latest('unit_2')), { reg_0: 7, reg_1: 8 });
    assert.equal((await flux.api('GET', '/api/devices/unit_9')).status, 404);

    const cmd = await flux.api('POST', '/api/devices/unit_2/commands', { command: 'read_holding', params: { unit: 2, address: 0, count: 2 } });
    assert.equal(cmd.status, 200, JSON.stringify(cmd.body));
    assert.equal(cmd.body.status, 'delivered');
    assert.equal(cmd.body.transport, 'tcp');
    assert.equal(cmd.body.gateway_id, 'gw_tcp');
    assert.equal(cmd.body.encoding, 'plugin');
    const bytes = await until('the request on the gateway socket', async () => (Buffer.concat(received).length >= 8 ? Buffer.concat(received) : undefined));
    assert.equal(bytes.toString('hex'), '020300000002c438', 'read holding registers 0-1 of unit 2, with its CRC');
    s.destroy();
    await until('units offline with their gateway', async () => ((await status('unit_1')) === 'offline' && (await status('unit_2')) === 'offline') || undefined);
    const offline = await flux.api('POST', '/api/devices/unit_2/commands', { command: 'read_holding', params: { unit: 2, address: 0, count: 2 } });
    assert.equal(offline.status, 409, 'a child whose gateway is gone is offline');
    assert.match(offline.body.error.message, /gw_tcp/);
  });

  it("over MQTT: a command to a child is published on the gateway's command topic below the child's id", async function () {
    const gw = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { clientId: 'gw_mqtt', username: 'gw_mqtt', password: secret.gw_mqtt, reconnectPeriod: 0 });
    await gw.subscribeAsync('/dtu_mqtt/gw_mqtt/command/#', { qos: 1 });
    const got = new Promise<{ topic: string; payload: Buffer }>((resolve) => gw.once('message', (topic, payload) => resolve({ topic, payload })));
    const cmd = await flux.api('POST', '/api/devices/unit_4/commands', { command: 'write_register', params: { unit: 4, address: 1, value: 300 } });
    assert.equal(cmd.status, 200, JSON.stringify(cmd.body));
    assert.equal(cmd.body.gateway_id, 'gw_mqtt');
    const m = await got;
    assert.equal(m.topic, '/dtu_mqtt/gw_mqtt/command/unit_4');
    assert.equal(m.payload.subarray(0, 6).toString('hex'), '04060001012c', 'write register 1 of unit 4 = 300');
    await gw.publishAsync('/dtu_mqtt/gw_mqtt/properties/report', rtuResponse(3, [11, 12]), { qos: 1 });
    assert.deepEqual(await until('unit_3 stored', () => latest('unit_3')), { reg_0: 11, reg_1: 12 });
    await gw.endAsync();
  });

  it("auto_register_children creates a child on its first report, but never takes another gateway's child", async function () {
    const gw = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { clientId: 'gw_auto', username: 'gw_auto', password: secret.gw_auto, reconnectPeriod: 0 });
    await gw.publishAsync('/auto_gw/gw_auto/properties/report', seedFrame(7, 305), { qos: 1 });
    await gw.publishAsync('/auto_gw/gw_auto/properties/report', seedFrame(1, 999), { qos: 1 }); // gw_seed's child
    assert.equal((await until('sensor_7 stored', () => latest('sensor_7'))).temperature, 30.5);
    const created = await flux.api('GET', '/api/devices/sensor_7');
    assert.equal(created.body.gateway_id, 'gw_auto');
    assert.equal(created.body.product_id, (await flux.api('GET', '/api/products/boiler')).body.id);
    assert.equal((await flux.api('GET', '/api/devices/sensor_1')).body.gateway_id, 'gw_seed', 'the child stays with its gateway');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await latest('sensor_1'))?.temperature, 45.3, "another gateway wrote sensor_1's telemetry");
    await gw.endAsync();
  });
});
