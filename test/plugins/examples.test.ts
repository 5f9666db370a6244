/** The example plugins as built into plugins/dist (`npm run plugins:build`), through the real host. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startHost, type HostFixture } from './host-context.ts';
import { ROOT } from '../helpers/flux-process.ts';
import { createFramer } from '../../runtime/plugins/index.ts';
import { DEBIAN_RUST_PACKAGES, hasDebianRust, hostCargo, offlineCargoConfig } from '../../plugins/toolchain.ts';

const DIST = path.join(ROOT, 'plugins', 'dist');
const SEED_FRAME = Buffer.from('01030201C50000', 'hex');

describe('example plugins', function () {
  this.timeout(30_000);
  let f: HostFixture;
  before(async () => {
    for (const id of ['modbus', 'modbus-as', 'modbus-rtu']) assert.ok(fs.existsSync(path.join(DIST, `${id}.wasm`)), `plugins/dist/${id}.wasm is missing: run npm run plugins:build`);
    // The host reads plugins/dist itself, as `npm start` on a fresh clone does.
    f = await startHost({ workers: 1, pluginsDir: DIST, watch: false });
  });
  after(() => f?.stop());

  for (const id of ['modbus', 'modbus-as']) {
    it(`${id} decodes the seed frame 01 03 02 01 C5 00 00 to sensor_1 at 45.3 degrees`, async () => {
      const d = await f.host.decodeFrame(id, SEED_FRAME);
      assert.deepEqual(d.messages, [{ device_id: 'sensor_1', values: { temperature: 45.3 } }]);
      assert.deepEqual(f.host.meta(id)!.framing, { type: 'fixed', size: 7, max: 65536 });
    });

    it(`${id} refuses a short frame with a reason instead of trapping`, async () => {
      const err = await f.host.decodeFrame(id, Buffer.from('0103', 'hex')).catch((e) => e);
      assert.equal(err.cause, 'plugin_error');
      assert.match(err.message, /need at least 5/);
    });
  }

  for (const id of ['modbus', 'modbus-as']) {
    it(`${id} encodes write_register as a Modbus RTU write-single-register request with its CRC`, async () => {
      // The Modbus spec's example: unit 17, register 1 := 3 → 11 06 0001 0003 9A9B.
      assert.equal((await f.host.encode(id, 'write_register', { unit: 17, address: 1, value: 3 })).toString('hex'), '1106000100039a9b');
      // the unit from the device id the host sends (sensor_1 → 1); a negative value as a signed register
      const frame = await f.host.encode(id, { command: 'write_register', params: { address: 2, value: -2 }, device_id: 'sensor_1' });
      assert.equal(frame.subarray(0, 6).toString('hex'), '01060002fffe');
      assert.equal(frame.readUInt16LE(6), rtuCrc(frame.subarray(0, 6)));
      // the seed's scene command TurnOn { brightness: 100 } for light_switch_01
      assert.equal((await f.host.encode(id, { command: 'TurnOn', params: { brightness: 100 }, device_id: 'light_switch_01' })).subarray(0, 6).toString('hex'), '010600000064');
    });

    it(`${id} refuses a command it cannot encode, with the reason`, async () => {
      await assert.rejects(f.host.encode(id, 'reboot', {}), /unknown command 'reboot'/);
      await assert.rejects(f.host.encode(id, { command: 'write_register', params: { address: 1, value: 70000 }, device_id: 'sensor_1' }), /params\.value must be a whole number/);
      await assert.rejects(f.host.encode(id, { command: 'write_register', params: { address: 1, value: 1 }, device_id: 'boiler' }), /params\.unit is required/);
    });
  }

  it('modbus-rtu checks the CRC and decodes registers, writes and exceptions', async () => {
    assert.deepEqual((await f.host.decodeFrame('modbus-rtu', Buffer.from('01030400EA01C51A04', 'hex'))).messages, [{ device_id: 'unit_1', values: { reg_0: 234, reg_1: 453 } }]);
    const bad = await f.host.decodeFrame('modbus-rtu', Buffer.from('01030400EA01C51A05', 'hex')).catch((e) => e);
    assert.match(bad.message, /CRC mismatch: frame says 051a, computed 041a/);
    // a write-single-register echo, made by encode and decoded back
    const write = await f.host.encode('modbus-rtu', 'write_register', { unit: 17, address: 1, value: 3 });
    assert.equal(write.toString('hex'), '110600010003' + write.subarray(6).toString('hex'));
    assert.deepEqual((await f.host.decodeFrame('modbus-rtu', write)).messages, [{ device_id: 'unit_17', values: { register: 1, value: 3 } }]);
    const exc = Buffer.from('018302', 'hex');
    const crc = rtuCrc(exc);
    const err = await f.host.decodeFrame('modbus-rtu', Buffer.concat([exc, Buffer.from([crc & 0xff, crc >> 8])])).catch((e) => e);
    assert.match(err.message, /exception 2 for function 3/);
  });

  it('modbus-rtu encodes commands with a valid CRC and refuses bad parameters', async () => {
    assert.equal((await f.host.encode('modbus-rtu', 'read_holding', { unit: 1, address: 0, count: 2 })).toString('hex'), '010300000002c40b');
    assert.equal((await f.host.encode('modbus-rtu', 'write_coil', { unit: 1, address: 172, on: true })).toString('hex'), '010500acff004c1b');
    await assert.rejects(f.host.encode('modbus-rtu', 'read_holding', { unit: 300, address: 0, count: 1 }), /params\.unit must be an integer from 0 to 247/);
    await assert.rejects(f.host.encode('modbus-rtu', 'explode', { unit: 1 }), /unknown command 'explode'/);
  });

  it("modbus-rtu's framing splits a TCP byte stream into its frames", async () => {
    const framing = f.host.meta('modbus-rtu')!.framing!;
    const a = Buffer.from('01030400EA01C51A04', 'hex');
    const split = createFramer(framing);
    const stream = Buffer.concat([a, a]);
    const frames = [...split.push(stream.subarray(0, 5)), ...split.push(stream.subarray(5, 13)), ...split.push(stream.subarray(13))];
    assert.deepEqual(frames.map((x) => x.toString('hex')), [a.toString('hex'), a.toString('hex')]);
  });

  it("the Rust SDK's and the Modbus crate's own tests pass (cargo test)", function () {
    this.timeout(300_000);
    // test/setup/system-packages.sh (npm's pretest) installs Debian's toolchain and crate sources.
    const cargo = hostCargo();
    assert.ok(cargo, 'no cargo: run bash test/setup/system-packages.sh');
    assert.ok(hasDebianRust(), `Debian's crate sources are missing: apt-get install -y ${DEBIAN_RUST_PACKAGES}`);
    const r = spawnSync(cargo, [...offlineCargoConfig(), 'test', '--workspace', '--quiet'], { cwd: path.join(ROOT, 'plugins'), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /test result: ok\. 6 passed/);
    assert.match(r.stdout, /test result: ok\. 5 passed/);
  });
});

function rtuCrc(b: Buffer): number {
  let c = 0xffff;
  for (const x of b) {
    c ^= x;
    for (let i = 0; i < 8; i++) c = c & 1 ? (c >> 1) ^ 0xa001 : c >> 1;
  }
  return c;
}
