/** plugins/sdk-assemblyscript: a fixture plugin compiled with asc and run through the real host (readers, JSON writer, commands, errors). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import asc from 'assemblyscript/asc';
import { startHost, type HostFixture } from './host-context.ts';
import { tempDir, ROOT } from '../helpers/flux-process.ts';
import { PluginCallError } from '../../runtime/plugins/index.ts';

async function compile(entry: string): Promise<Buffer> {
  const out = path.join(tempDir('flux-asc-'), 'out.wasm');
  const { error, stderr } = await asc.main([entry, '--outFile', out, '--runtime', 'incremental', '--optimizeLevel', '3']);
  if (error) throw new Error(`${error.message}\n${stderr}`);
  return fs.readFileSync(out);
}

describe('AssemblyScript SDK', function () {
  this.timeout(60_000);
  let f: HostFixture;
  before(async () => {
    f = await startHost({ workers: 1 });
    await f.host.install('sdk', await compile(path.join(ROOT, 'plugins/sdk-assemblyscript/tests/assembly/fixture.ts')), 'api');
  });
  after(() => f?.stop());
  const decode = async (hex: string) => (await f.host.decodeFrame('sdk', Buffer.from(hex, 'hex'))).messages;

  it('reads big- and little-endian integers and escapes strings in the JSON it writes', async () => {
    assert.deepEqual(await decode('01' + '0102' + '0102' + 'fffe' + '01020304'), [{ device_id: 'le"ft\\\n', values: { u16be: 0x0102, u16le: 0x0201, i16be: -2, u32be: 0x01020304 } }]);
  });

  it('writes floats, whole numbers without .0, unicode strings, booleans and ts', async () => {
    assert.deepEqual(await decode('02' + '3fc00000'), [{ device_id: 'f', values: { f32be: 1.5, half: 0.5, whole: 3, s: 'é"', b: true }, ts: 1700000000000 }]);
  });

  it('answers several messages as an array', async () => {
    assert.deepEqual(await decode('03'), [{ device_id: 'a', values: { n: 1 } }, { device_id: 'b', values: { n: 2 } }]);
  });

  it('fails a read past the end of the frame with the reader message', async () => {
    const err = await f.host.decodeFrame('sdk', Buffer.from('04', 'hex')).catch((e) => e);
    assert.ok(err instanceof PluginCallError);
    assert.equal(err.cause, 'trap');
    assert.match(err.message, /abort: frame too short: need 101 bytes, have 1/);
  });

  it("turns error() into the message's failure and keeps the log line", async () => {
    const r = await f.host.tryCall('sdk', 'decode', Buffer.from('05', 'hex'));
    assert.equal(r.ok, false);
    assert.equal(r.error!.cause, 'plugin_error');
    assert.match(r.error!.message, /refused "politely"/);
    assert.deepEqual(r.logs, ['about to refuse']);
  });

  it('writes NaN as null, which the host refuses as an invalid value', async () => {
    const err = await f.host.decodeFrame('sdk', Buffer.from('06', 'hex')).catch((e) => e);
    assert.equal(err.cause, 'invalid_message');
    assert.match(err.message, /value 'v' is null/);
  });

  it('parses commands with numbers, booleans, strings and nested params, and refuses unknown ones', async () => {
    const bytes = await f.host.encode('sdk', 'go', { n: 7, on: true, name: 'pump "2"', nested: { a: [1, { b: '}' }] } });
    assert.deepEqual([...bytes], [7, 1, 8, 1]);
    const err = await f.host.encode('sdk', 'stop', { n: 1, on: false, name: '' }).catch((e) => e);
    assert.match(err.message, /abort: unknown command stop/);
    const missing = await f.host.encode('sdk', 'go', {}).catch((e) => e);
    assert.match(missing.message, /params\.n must be a number/);
  });
});
