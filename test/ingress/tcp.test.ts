/** Raw TCP ingress with real sockets: login, every framing with split and coalesced writes, garbage, oversized frames, status, downlink. */
import assert from 'node:assert/strict';
import net from 'node:net';
import { encodeFrame, parseFraming, type Framing, type IngressDeps } from '../../runtime/ingress/index.ts';
import { startAccess, until, type Access } from '../broker/access.ts';
import { CASES, expected } from './framing.test.ts';

function connect(port: number): Promise<net.Socket & { received: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve(s as never)) as net.Socket & { received: Buffer[] };
    s.received = [];
    s.on('data', (d) => s.received.push(d));
    s.on('error', () => {});
    s.once('error', reject);
  });
}

const closed = (s: net.Socket, ms = 3000) =>
  new Promise<boolean>((resolve) => {
    if (s.destroyed || s.readableEnded) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });

/** A login frame in the product's framing (fixed frames are padded with spaces, which JSON ignores). */
function loginFrame(framing: Framing, deviceId: string, secret: string): Buffer {
  const json = Buffer.from(JSON.stringify({ device_id: deviceId, secret }));
  if (framing.type === 'fixed') return Buffer.concat([json, Buffer.alloc(framing.size - json.length, 0x20)]);
  return encodeFrame(framing, json);
}

async function withProduct(a: Access, key: string, framing: unknown, pluginId?: string): Promise<{ port: number; secret: string; productId: string }> {
  const p = await a.ctx.registry.products.create({ key, name: key, protocol_plugin_id: pluginId ?? null, transport: { tcp: { port: 0, framing } } });
  const secret = `secret-${key}-0123456789abcdef`;
  await a.ctx.registry.devices.create({ id: `${key}-dev`, product_id: p.id, secret });
  await a.ingress.tcp.sync();
  return { port: a.ingress.tcp.portOf(key)!, secret, productId: p.id };
}

/** The device id the fake plugin decodes from any frame (Modbus and fixed-size devices send no JSON login). */
let identifyAs: string | undefined;
const fakePlugins: IngressDeps['plugins'] = {
  decode: async (_id: string, bytes: Uint8Array) => (identifyAs ? { device_id: identifyAs, values: { first: bytes[0] } } : undefined),
  meta: () => undefined,
  encode: () => {
    throw new Error('the fake plugin encodes nothing');
  },
};

describe('TCP ingress', function () {
  let a: Access;
  beforeEach(async () => {
    identifyAs = undefined;
    a = await startAccess({ ingress: { loginTimeoutMs: 1500 }, plugins: fakePlugins });
  });
  afterEach(async () => {
    await a.stop();
  });

  for (const [name, framingDecl, frames] of CASES) {
    const json = JSON.parse(JSON.stringify(framingDecl));
    it(`${name}: frames written one byte at a time and all in one write arrive whole, in order`, async function () {
      this.timeout(30_000);
      const key = `p${Math.random().toString(36).slice(2, 8)}`;
      const framing = parseFraming(json);
      // Modbus and fixed-size devices cannot send a JSON login: the product's plugin identifies them by what it decodes
      const byPlugin = framing.type === 'modbus-tcp' || framing.type === 'fixed';
      if (byPlugin) identifyAs = `${key}-dev`;
      const { port } = await withProduct(a, key, json, byPlugin ? 'fake-plugin' : undefined);
      const s = await connect(port);
      const login = byPlugin ? Buffer.alloc(0) : loginFrame(framing, `${key}-dev`, `secret-${key}-0123456789abcdef`);
      const stream = Buffer.concat([login, ...frames]);
      for (const b of stream) {
        s.write(Buffer.from([b]));
        await new Promise((r) => setImmediate(r));
      }
      s.write(Buffer.concat(frames)); // and again, coalesced in one write
      const want = [...frames, ...frames].map((f) => expected(framing, f));
      const mine = () => a.uplinks.filter((u) => u.deviceId === `${key}-dev`);
      await until(() => mine().length >= want.length, `${want.length} frames`);
      assert.deepEqual(mine().map((u) => u.payload), want);
      assert.ok(mine().every((u) => u.type === 'raw' && u.transport === 'tcp' && u.productKey === key));
      s.destroy();
    });
  }

  it('refuses a wrong login: answers denied, closes, logs why and stores nothing', async () => {
    const { port } = await withProduct(a, 'lines', { type: 'delimiter', delimiter: '0a' });
    const s = await connect(port);
    s.write('{"device_id":"lines-dev","secret":"wrong-secret-0123456789"}\n{"values":{"t":1}}\n');
    assert.equal(await closed(s), true);
    assert.equal(Buffer.concat(s.received).toString(), '{"login":"denied"}\n');
    assert.equal(a.uplinks.length, 0);
    assert.equal(a.statuses.length, 0);
    assert.ok(a.logs.some((l) => l.msg === 'TCP connection closed' && /login refused: unknown device or wrong secret/.test(String(l.reason))));
  });

  it('refuses a device of another product on this port', async () => {
    const { port } = await withProduct(a, 'lines', { type: 'delimiter', delimiter: '0a' });
    const s = await connect(port);
    s.write(`{"device_id":"dev-1","secret":"${a.secrets['dev-1']}"}\n`);
    assert.equal(await closed(s), true);
    assert.ok(a.logs.some((l) => /device belongs to product thermo/.test(String(l.reason))));
  });

  it('drops frames before identification and closes after three of them, or after the login timeout', async () => {
    const { port } = await withProduct(a, 'lines', { type: 'delimiter', delimiter: '0a' });
    const chatty = await connect(port);
    chatty.write('a\nb\nc\n');
    assert.equal(await closed(chatty), true);
    const silent = await connect(port);
    const t0 = Date.now();
    assert.equal(await closed(silent, 4000), true);
    assert.ok(Date.now() - t0 >= 1400, 'closed by the login timeout');
    assert.equal(a.uplinks.length, 0);
  });

  it('closes a connection sending an oversized frame or garbage that never frames, leaving other connections untouched', async () => {
    const len = await withProduct(a, 'len', { type: 'length', bytes: 2, max: 512 });
    const lines = await withProduct(a, 'lines', { type: 'delimiter', delimiter: '0a', max: 256 });
    const good = await connect(lines.port);
    good.write(`{"device_id":"lines-dev","secret":"${lines.secret}"}\nbefore\n`);
    await until(() => a.uplinks.length === 1, 'the good frame');
    const big = await connect(len.port);
    big.write(encodeFrame(parseFraming({ type: 'length', bytes: 2 }), Buffer.from(`{"device_id":"len-dev","secret":"${len.secret}"}`)));
    big.write(Buffer.from([0x10, 0x00])); // claims 4096 bytes
    assert.equal(await closed(big), true);
    const garbage = await connect(lines.port);
    garbage.write(Buffer.alloc(1000, 0x41));
    assert.equal(await closed(garbage), true);
    assert.ok(a.logs.some((l) => /exceeds the limit of 512/.test(String(l.reason))));
    assert.ok(a.logs.some((l) => /no delimiter within 256 bytes/.test(String(l.reason))));
    good.write('after\n');
    await until(() => a.uplinks.length === 2, 'the good connection still works');
    assert.deepEqual(a.uplinks.map((u) => u.payload.toString()), ['before', 'after']);
    good.destroy();
  });

  it('puts the device online on login and offline when the connection closes', async () => {
    const { port, secret } = await withProduct(a, 'lines', { type: 'delimiter', delimiter: '0a' });
    const s = await connect(port);
    s.write(`{"device_id":"lines-dev","secret":"${secret}"}\n`);
    await until(() => a.statuses.length === 1, 'online');
    assert.deepEqual([a.statuses[0]!.status, a.statuses[0]!.transport], ['online', 'tcp']);
    // the status event and the login answer race on a loaded machine: wait for the bytes
    await until(() => Buffer.concat(s.received).length >= 15, 'the login answer');
    assert.equal(Buffer.concat(s.received).toString(), '{"login":"ok"}\n');
    s.destroy();
    await until(() => a.statuses.length === 2, 'offline');
    assert.equal(a.statuses[1]!.status, 'offline');
    await a.presence.flush();
    assert.equal((await a.ctx.registry.devices.get('lines-dev')).status, 'offline');
  });

  it('sends a downlink command to the device over its TCP connection, in its framing', async () => {
    const { port, secret } = await withProduct(a, 'len', { type: 'length', bytes: 2 });
    const s = await connect(port);
    s.write(encodeFrame(parseFraming({ type: 'length', bytes: 2 }), Buffer.from(`{"device_id":"len-dev","secret":"${secret}"}`)));
    await until(() => a.statuses.length === 1, 'online');
    const downlink = a.ingress.downlink;
    const r = await downlink.send('len-dev', 'set_interval', { seconds: 30 });
    assert.equal(r.status, 'delivered');
    assert.equal(r.transport, 'tcp');
    await until(() => Buffer.concat(s.received).length > 16 + 2, 'the command frame');
    const all = Buffer.concat(s.received);
    const first = all.readUInt16BE(0);
    const second = all.subarray(2 + first);
    const cmd = JSON.parse(second.subarray(2, 2 + second.readUInt16BE(0)).toString());
    assert.equal(cmd.command, 'set_interval');
    assert.deepEqual(cmd.params, { seconds: 30 });
    assert.equal(cmd.id, r.id);
    s.destroy();
  });
});
