/**
 * The Modbus master against real slaves on loopback: modbus-serial's ServerTCP (a third-party Modbus
 * TCP slave) and test/modbus/slave.ts (Modbus TCP and RTU-over-TCP). Registry, bus and presence are
 * the real ones; devices come from the registry as the API stores them.
 */
import assert from 'node:assert/strict';
import ModbusRTU from 'modbus-serial';
import { loadSettings } from '../../settings.ts';
import { testContext } from '../helpers/context.ts';
import { tempDir } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';
import { createModbusMaster, type ModbusMaster } from '../../runtime/modbus/index.ts';
import { createDownlink, createPresence } from '../../runtime/ingress/index.ts';
import type { FluxContext } from '../../runtime/app/context.ts';
import type { UplinkMessage, StatusEvent } from '../../runtime/bus/index.ts';
import { FluxError } from '../../runtime/errors/index.ts';
import { startSlave, type TestSlave } from './slave.ts';
import { VECTORS, ORDERS, arrange } from './vectors.ts';

interface Rig {
  ctx: FluxContext;
  master: ModbusMaster;
  uplinks: UplinkMessage[];
  statuses: StatusEvent[];
  stop(): Promise<void>;
}

async function rig(): Promise<Rig> {
  const dir = tempDir('flux-modbus-');
  const settings = loadSettings({ FLUX_DATA_DIR: dir, FLUX_LOG_LEVEL: 'warn' });
  const { ctx } = await testContext(settings);
  const uplinks: UplinkMessage[] = [];
  const statuses: StatusEvent[] = [];
  ctx.bus.on('uplink', uplinks, (u) => void uplinks.push(u));
  ctx.bus.on('status', statuses, (s) => void statuses.push(s));
  const presence = createPresence(ctx);
  const master = createModbusMaster({ registry: ctx.registry, journal: ctx.journal, presence, metrics: ctx.metrics, log: ctx.log, syncMs: 200 });
  await master.start();
  return {
    ctx,
    master,
    uplinks,
    statuses,
    async stop() {
      await master.stop();
      await presence.flush();
      await ctx.registry.stop();
    },
  };
}

const valuesOf = (r: Rig, deviceId: string) => r.uplinks.filter((u) => u.deviceId === deviceId).map((u) => u.decoded!.values);
const lastValues = (r: Rig, deviceId: string) => valuesOf(r, deviceId).at(-1);

/** Boiler: temperature in holding register 0 (× 0.1), setpoint in holding register 1 (× 0.1), a pump coil. */
const BOILER = {
  interval_ms: 200,
  timeout_ms: 300,
  offline_after: 2,
  registers: [
    { property: 'temperature', function: 3, address: 0, type: 'int16', scale: 0.1 },
    { property: 'setpoint', function: 3, address: 1, type: 'int16', scale: 0.1 },
    { property: 'pump', function: 1, address: 0 },
    { property: 'flow', function: 4, address: 0, type: 'uint16' },
  ],
};

async function boilers(r: Rig, slave: TestSlave, units: number[], key = 'boiler'): Promise<string[]> {
  const p = await r.ctx.registry.products.create({ key, name: key, transport: { modbus: BOILER } });
  const ids: string[] = [];
  for (const unit of units) {
    const id = `${key}-${unit}`;
    await r.ctx.registry.devices.create({ id, product_id: p.id, transport: { modbus: { host: '127.0.0.1', port: slave.port, unit, mode: slave.mode } } });
    ids.push(id);
  }
  await r.master.sync();
  return ids;
}

describe('modbus master', function () {
  this.timeout(30_000);
  let r: Rig;
  let slaves: TestSlave[] = [];
  beforeEach(async () => {
    r = await rig();
  });
  afterEach(async () => {
    await r.stop();
    for (const s of slaves) await s.close();
    slaves = [];
  });

  it('maps registers to properties in every type and word/byte order, read from modbus-serial’s ServerTCP in merged requests', async function () {
    const holding = new Uint16Array(1000);
    const registers: Record<string, unknown>[] = [];
    const expected: Record<string, number | boolean> = {};
    let address = 0;
    for (const v of VECTORS) {
      for (const [wordOrder, byteOrder] of ORDERS) {
        const words = arrange(v.words, wordOrder, byteOrder);
        words.forEach((w, i) => (holding[address + i] = w));
        const property = `${v.type}_${wordOrder}_${byteOrder}`;
        registers.push({ property, function: 3, address, type: v.type, word_order: wordOrder, byte_order: byteOrder });
        expected[property] = v.value;
        address += words.length;
      }
    }
    registers.push({ property: 'coil', function: 1, address: 5 }, { property: 'input_bit', function: 2, address: 6 }, { property: 'input_reg', function: 4, address: 7, type: 'int16', scale: 0.01, offset: 1 });
    Object.assign(expected, { coil: true, input_bit: true, input_reg: -11.34 });
    const reads: number[] = [];
    const server = new ModbusRTU.ServerTCP(
      {
        getMultipleHoldingRegisters: (addr: number, length: number) => {
          reads.push(length);
          return [...holding.subarray(addr, addr + length)];
        },
        getInputRegister: (addr: number) => (addr === 7 ? (-1234 & 0xffff) : 0),
        getCoil: (addr: number) => addr === 5,
        getDiscreteInput: (addr: number) => addr === 6,
      },
      { host: '127.0.0.1', port: 0, unitID: 255 } as never,
    );
    await new Promise<void>((resolve) => server.on('initialized', () => resolve()));
    const port = ((server as unknown as { _server: import('node:net').Server })._server.address() as import('node:net').AddressInfo).port;
    try {
      const p = await r.ctx.registry.products.create({ key: 'meter', name: 'meter', transport: { modbus: { interval_ms: 300, timeout_ms: 1000, registers } } });
      await r.ctx.registry.devices.create({ id: 'meter-1', product_id: p.id, transport: { modbus: { host: '127.0.0.1', port, unit: 3 } } });
      await r.master.sync();
      const values = await until('a poll with every property', () => valuesOf(r, 'meter-1').find((v) => Object.keys(v).length === Object.keys(expected).length));
      assert.deepEqual(values, expected);
      assert.ok(reads.every((n) => n === address), `the ${address} holding registers came in one read each poll (reads: ${reads.slice(0, 5)})`);
      const up = r.uplinks.find((u) => u.deviceId === 'meter-1')!;
      assert.equal(up.transport, 'modbus');
      assert.deepEqual(JSON.parse(up.payload.toString()).values, up.decoded!.values);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('polls three units behind one RTU-over-TCP endpoint over one connection, one request at a time', async function () {
    const slave = await startSlave('rtu-over-tcp');
    slaves.push(slave);
    slave.delayMs = 5;
    for (const unit of [1, 2, 3]) {
      slave.unit(unit).holding[0] = 200 + unit;
      slave.unit(unit).holding[1] = 400 + unit;
      slave.unit(unit).coils[0] = unit % 2;
      slave.unit(unit).input[0] = unit * 10;
    }
    const ids = await boilers(r, slave, [1, 2, 3]);
    for (const [i, id] of ids.entries()) {
      const unit = i + 1;
      const v = await until(`values of ${id}`, () => lastValues(r, id));
      assert.deepEqual(v, { temperature: 20 + unit / 10, setpoint: 40 + unit / 10, pump: unit % 2 === 1, flow: unit * 10 });
    }
    await until('five polls of each unit', () => (ids.every((id) => valuesOf(r, id).length >= 5) ? true : undefined));
    assert.equal(slave.connections, 1, 'the three units share one connection');
    assert.equal(slave.overlaps, 0, 'no request was sent while an answer was due');
    const status = r.master.status().endpoints;
    assert.equal(status.length, 1);
    assert.equal(status[0]!.endpoint, `rtu://127.0.0.1:${slave.port}`);
    assert.deepEqual(status[0]!.units.map((u) => [u.unit, u.online]), [[1, true], [2, true], [3, true]]);
  });

  it('polls sub-devices through their gateway: the gateway gives host, port and mode, each child its unit', async function () {
    const slave = await startSlave('rtu-over-tcp');
    slaves.push(slave);
    for (const unit of [5, 6]) slave.unit(unit).holding[0] = unit * 100;
    const gwProduct = await r.ctx.registry.products.create({ key: 'rtu-gw', name: 'RTU converter' });
    await r.ctx.registry.devices.create({ id: 'gw-1', product_id: gwProduct.id, is_gateway: true, transport: { modbus: { host: '127.0.0.1', port: slave.port, mode: 'rtu-over-tcp' } } });
    const p = await r.ctx.registry.products.create({ key: 'sensor', name: 'sensor', transport: { modbus: BOILER } });
    for (const unit of [5, 6]) await r.ctx.registry.devices.create({ id: `sensor-${unit}`, product_id: p.id, gateway_id: 'gw-1', transport: { modbus: { unit } } });
    await r.master.sync();
    assert.equal((await until('sensor-5 values', () => lastValues(r, 'sensor-5')))!.temperature, 50);
    assert.equal((await until('sensor-6 values', () => lastValues(r, 'sensor-6')))!.temperature, 60);
    assert.equal(slave.connections, 1, 'the children share the gateway’s one connection');
    const [ep] = r.master.status().endpoints;
    assert.equal(ep!.endpoint, `rtu://127.0.0.1:${slave.port}`);
    assert.deepEqual(ep!.units.map((u) => [u.device_id, u.unit]), [['sensor-5', 5], ['sensor-6', 6]]);
    assert.equal(valuesOf(r, 'gw-1').length, 0, 'the gateway itself has no register map: not polled');
  });

  for (const mode of ['tcp', 'rtu-over-tcp'] as const) {
    it(`${mode}: a unit that stops answering goes offline with the reason; the others keep their interval`, async function () {
      const slave = await startSlave(mode);
      slaves.push(slave);
      const ids = await boilers(r, slave, [1, 3]);
      // the unit that will die has a long timeout (2 s): had its requests held the others', their
      // intervals would show gaps of 2 s; the bounds below leave room for a loaded machine
      const slow = await r.ctx.registry.products.create({ key: 'slow', name: 'slow', transport: { modbus: { ...BOILER, timeout_ms: 2000 } } });
      await r.ctx.registry.devices.create({ id: 'boiler-2', product_id: slow.id, transport: { modbus: { host: '127.0.0.1', port: slave.port, unit: 2, mode } } });
      await r.master.sync();
      await until('all three online', () => ([...ids, 'boiler-2'].every((id) => r.statuses.some((s) => s.deviceId === id && s.status === 'online')) ? true : undefined));
      const unit2 = () => r.master.status().endpoints[0]!.units.find((u) => u.unit === 2)!;
      const polls0 = unit2().polls;
      const asked0 = slave.counts.get(2)!;
      slave.muted.add(2);
      const mutedAt = Date.now();
      const offline = await until('unit 2 offline', () => r.statuses.find((s) => s.deviceId === 'boiler-2' && s.status === 'offline'), 30_000);
      assert.match(offline.reason!, /^timeout: unit 2 did not answer within 2000 ms/);
      assert.equal(offline.transport, 'modbus');
      await new Promise((res) => setTimeout(res, 1000));
      for (const id of ids) {
        const ts = r.uplinks.filter((u) => u.deviceId === id && u.ts > mutedAt).map((u) => u.ts);
        const gaps = ts.slice(1).map((t, i) => t - ts[i]!);
        const window = Date.now() - mutedAt;
        // RTU: until unit 2 is offline, each of its polls holds the bus 2 s (the others wait, then go on)
        const expected = mode === 'tcp' ? window / 200 / 3 : window / 2200 / 2;
        assert.ok(ts.length >= expected, `${id} kept polling (${ts.length} polls in ${window} ms at a 200 ms interval)`);
        // TCP: unit 2's requests never hold the others'. RTU: the bus is serial, so a request to
        // unit 2 holds it for up to its 2 s timeout (offline units are then probed rarely).
        const limit = mode === 'tcp' ? 1500 : 2000 + 1500;
        assert.ok(Math.max(...gaps) < limit, `${id}: largest gap ${Math.max(...gaps)} ms (limit ${limit}); gaps ${gaps.join(',')}`);
        assert.ok(!r.statuses.some((s) => s.deviceId === id && s.status === 'offline'), `${id} stayed online`);
      }
      assert.equal((await r.ctx.registry.devices.get('boiler-2')).status, 'offline');
      assert.equal((await r.ctx.registry.devices.get('boiler-1')).status, 'online');
      const u2 = unit2();
      assert.equal(u2.online, false);
      // each poll asks 3 blocks; after one times out, RTU does not send the rest of that poll
      const asked = slave.counts.get(2)! - asked0;
      const polls = u2.polls - polls0;
      if (mode === 'rtu-over-tcp') assert.ok(asked <= polls + 1, `RTU: ${asked} requests for ${polls} polls of the dead unit`);
      else assert.ok(asked >= 3 * (polls - 1), `TCP: ${asked} requests for ${polls} polls (3 blocks each, pipelined)`);
      assert.match(u2.last_error!, /timeout/);
      slave.muted.delete(2);
      await until('unit 2 back online', () => r.statuses.find((s) => s.deviceId === 'boiler-2' && s.status === 'online' && s.ts > offline.ts), 30_000);
    });
  }

  it('a write command changes the slave’s registers and coils (functions 6, 16, 5), through the downlink', async function () {
    const slave = await startSlave('tcp');
    slaves.push(slave);
    const p = await r.ctx.registry.products.create({
      key: 'plant', name: 'plant',
      transport: { modbus: { ...BOILER, registers: [...BOILER.registers, { property: 'limit', function: 3, address: 10, type: 'float32', word_order: 'little' }] } },
    });
    await r.ctx.registry.devices.create({ id: 'plant-1', product_id: p.id, transport: { modbus: { host: '127.0.0.1', port: slave.port, unit: 7 } } });
    const downlink = createDownlink(r.ctx, { fieldbus: r.master });
    const res = await downlink.send('plant-1', 'write', { property: 'setpoint', value: 42.5 });
    assert.equal(res.status, 'delivered');
    assert.equal(res.transport, 'modbus');
    assert.equal(slave.unit(7).holding[1], 425);
    await downlink.send('plant-1', 'write', { values: { limit: 12.5, pump: true } });
    const b = Buffer.alloc(4);
    b.writeFloatBE(12.5);
    assert.deepEqual([slave.unit(7).holding[11], slave.unit(7).holding[10]], [b.readUInt16BE(0), b.readUInt16BE(2)], 'float32, low word first');
    assert.equal(slave.unit(7).coils[0], 1);
    assert.deepEqual(slave.log.filter(([, fn]) => fn >= 5).map(([, fn, a]) => [fn, a]), [[6, 1], [16, 10], [5, 0]]);
    await until('the written setpoint polled back', () => (lastValues(r, 'plant-1')?.setpoint === 42.5 ? true : undefined));
    await assert.rejects(downlink.send('plant-1', 'write', { property: 'flow', value: 1 }), (e: FluxError) => e.code === 'not_writable' && e.status === 422);
    await assert.rejects(downlink.send('plant-1', 'write', { property: 'setpoint', value: 99999 }), (e: FluxError) => e.code === 'bad_value' && /outside int16/.test(e.message));
    await assert.rejects(downlink.send('plant-1', 'reboot', {}), (e: FluxError) => e.code === 'unknown_command');
  });

  it('an exception answer comes back as a failed command naming the Modbus exception', async function () {
    const slave = await startSlave('rtu-over-tcp');
    slaves.push(slave);
    slave.illegal.add(1);
    await boilers(r, slave, [4]);
    const downlink = createDownlink(r.ctx, { fieldbus: r.master });
    await assert.rejects(downlink.send('boiler-4', 'write', { property: 'setpoint', value: 50 }), (e: FluxError) => {
      assert.equal(e.code, 'modbus_exception');
      assert.equal(e.status, 502);
      assert.match(e.message, /device 'boiler-4' \(unit 4 at rtu:\/\/127\.0\.0\.1:\d+\) refused the write of setpoint: Modbus exception 2 \(Illegal Data Address\)/);
      return true;
    });
    // the poll of registers 0–1 fails the same way: the device never shows online, and says why
    const unit = await until('the poll failure recorded', () => r.master.status().endpoints[0]?.units.find((u) => u.consecutive_failures >= 2));
    assert.equal(unit.online, false);
    assert.match(unit.last_error!, /^exception: exception 2 \(Illegal Data Address\)/);
    assert.ok(!r.statuses.some((s) => s.deviceId === 'boiler-4' && s.status === 'online'));
  });

  it('reconnects when the slave restarts, and its devices come back online', async function () {
    const slave = await startSlave('tcp');
    slaves.push(slave);
    slave.unit(1).holding[0] = 215;
    await boilers(r, slave, [1]);
    await until('online', () => r.statuses.find((s) => s.deviceId === 'boiler-1' && s.status === 'online'));
    await slave.stop();
    const off = await until('offline while the slave is down', () => r.statuses.find((s) => s.deviceId === 'boiler-1' && s.status === 'offline'));
    assert.match(off.reason!, /connection/);
    slave.unit(1).holding[0] = 230;
    await slave.listen();
    await until('online again', () => r.statuses.find((s) => s.deviceId === 'boiler-1' && s.status === 'online' && s.ts > off.ts), 20_000);
    await until('fresh values after the restart', () => (lastValues(r, 'boiler-1')?.temperature === 23 ? true : undefined));
    assert.equal(slave.connections, 2, 'one connection before the restart, one after');
  });

  it('follows registry changes: a removed device stops being polled and goes offline', async function () {
    const slave = await startSlave('tcp');
    slaves.push(slave);
    await boilers(r, slave, [1, 2]);
    await until('both polled', () => (valuesOf(r, 'boiler-2').length && valuesOf(r, 'boiler-1').length ? true : undefined));
    await r.ctx.registry.devices.update('boiler-2', { enabled: false });
    await r.master.sync();
    const n = slave.counts.get(2)!;
    await new Promise((res) => setTimeout(res, 600));
    assert.ok(slave.counts.get(2)! <= n + 1, 'a disabled device is no longer polled');
    assert.ok(r.statuses.some((s) => s.deviceId === 'boiler-2' && s.status === 'offline' && s.reason === 'modbus polling removed'));
    assert.deepEqual(r.master.status().endpoints[0]!.units.map((u) => u.device_id), ['boiler-1']);
  });
});
