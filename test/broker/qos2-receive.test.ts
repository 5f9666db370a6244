/**
 * A client's QoS 2 PUBLISHes awaiting their PUBREL (docs/broker.md "Limits"): aedes keeps each until
 * its PUBREL and kept them for good when none came, payload and all, so one device sending QoS 2
 * messages without PUBREL (or closing before it) grew the broker's heap without a bound.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { startAccess, until, nextMessage, type Access } from './access.ts';
import { MAX_QOS2_AWAITING } from '../../runtime/broker/index.ts';

type Incoming = { incomingGetPacket(c: { id: string }, p: { messageId: number }): Promise<{ payload: Buffer }> };
const incoming = (a: Access) => (a.broker.aedes as unknown as { persistence: Incoming }).persistence;

/** A raw MQTT 3.1.1 connection of a device that counts the packets it gets back. */
async function rawDevice(a: Access, device: string, clientId: string, clean = true) {
  const s = net.connect(a.broker.port(), '127.0.0.1');
  s.on('error', () => {});
  const got: Record<string, number> = {};
  let closed = false;
  const parser = mqttPacket.parser();
  parser.on('packet', (p) => (got[p.cmd] = (got[p.cmd] ?? 0) + 1));
  s.on('data', (d) => parser.parse(d));
  s.on('close', () => (closed = true));
  await new Promise((r) => s.once('connect', r));
  s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive: 30, username: device, password: Buffer.from(a.secrets[device]!) }));
  await until(() => got.connack, 'the CONNACK');
  return { s, got, closed: () => closed };
}

const publish = (topic: string, messageId: number, payload: Buffer) => mqttPacket.generate({ cmd: 'publish', topic, payload, qos: 2, messageId, retain: false, dup: false });

describe('broker: QoS 2 messages awaiting their PUBREL', function () {
  this.timeout(60_000);
  let a: Access;
  afterEach(async () => {
    await a?.stop();
  });

  it('closes a client that leaves more than the limit without PUBREL, and drops what it left', async () => {
    a = await startAccess();
    const d = await rawDevice(a, 'dev-1', 'dev-1/q2');
    const n = MAX_QOS2_AWAITING + 100;
    for (let id = 1; id <= n; id++) d.s.write(publish('/thermo/dev-1/blob', id, Buffer.from('x')));
    await until(() => d.closed(), 'the connection closed past the limit', 20_000);
    assert.ok(d.got.pubrec! >= MAX_QOS2_AWAITING && d.got.pubrec! < n, `PUBRECs: ${d.got.pubrec}`);
    assert.ok(a.logs.some((l) => l.msg === 'MQTT publish refused: too many QoS 2 messages await their PUBREL'));
    // nothing of that connection is kept
    for (const id of [1, MAX_QOS2_AWAITING]) await assert.rejects(incoming(a).incomingGetPacket({ id: 'dev-1/q2' }, { messageId: id }), /no such packet/);
  });

  it('keeps a stored QoS 2 message without its payload, and delivers the message once, whole', async () => {
    a = await startAccess();
    const p = await a.platform();
    await p.subscribeAsync('/thermo/dev-1/#', { qos: 2 });
    const message = nextMessage(p, (t) => t === '/thermo/dev-1/blob');
    const d = await rawDevice(a, 'dev-1', 'dev-1/q2b');
    const body = Buffer.alloc(100 * 1024, 0x62);
    d.s.write(publish('/thermo/dev-1/blob', 7, body));
    await until(() => d.got.pubrec, 'the PUBREC');
    assert.equal((await incoming(a).incomingGetPacket({ id: 'dev-1/q2b' }, { messageId: 7 })).payload.length, 0);
    d.s.write(publish('/thermo/dev-1/blob', 7, body)); // resent before the PUBREL: a duplicate
    d.s.write(mqttPacket.generate({ cmd: 'pubrel', messageId: 7 }));
    await until(() => d.got.pubcomp, 'the PUBCOMP');
    assert.deepEqual((await message).payload, body);
    await assert.rejects(nextMessage(p, (t) => t === '/thermo/dev-1/blob', 500));
    d.s.destroy();
  });

  it('keeps a persistent session\'s awaiting ids across a reconnect: a resent PUBLISH is not delivered twice', async () => {
    a = await startAccess();
    const p = await a.platform();
    await p.subscribeAsync('/thermo/dev-1/#', { qos: 2 });
    let delivered = 0;
    p.on('message', (t) => {
      if (t === '/thermo/dev-1/kept') delivered++;
    });
    const d = await rawDevice(a, 'dev-1', 'dev-1/q2p', false);
    d.s.write(publish('/thermo/dev-1/kept', 9, Buffer.from('once')));
    await until(() => d.got.pubrec, 'the PUBREC');
    d.s.destroy();
    await until(() => d.closed(), 'the first connection closed');
    const again = await rawDevice(a, 'dev-1', 'dev-1/q2p', false);
    again.s.write(mqttPacket.generate({ cmd: 'publish', topic: '/thermo/dev-1/kept', payload: Buffer.from('once'), qos: 2, messageId: 9, retain: false, dup: true }));
    await until(() => again.got.pubrec, 'the PUBREC of the resent PUBLISH');
    again.s.write(mqttPacket.generate({ cmd: 'pubrel', messageId: 9 }));
    await until(() => again.got.pubcomp, 'the PUBCOMP');
    // a platform subscriber's copy of a second publish would have arrived by now (same broker, loopback)
    await assert.rejects(nextMessage(p, (t) => t === '/thermo/dev-1/kept', 500));
    assert.equal(delivered, 1, 'delivered once');
    again.s.destroy();
  });

  it('logs a QoS 2 uplink sent again before its PUBREL once, also across a persistent session\'s reconnect', async () => {
    a = await startAccess();
    const topic = '/thermo/dev-1/properties/report';
    const d = await rawDevice(a, 'dev-1', 'dev-1/q2u', false);
    d.s.write(publish(topic, 11, Buffer.from('{"t":1}')));
    await until(() => d.got.pubrec, 'the PUBREC');
    d.s.write(mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('{"t":1}'), qos: 2, messageId: 11, retain: false, dup: true }));
    await until(() => d.got.pubrec === 2, 'the second PUBREC');
    d.s.destroy();
    await until(() => d.closed(), 'the first connection closed');
    const again = await rawDevice(a, 'dev-1', 'dev-1/q2u', false);
    again.s.write(mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.from('{"t":1}'), qos: 2, messageId: 11, retain: false, dup: true }));
    await until(() => again.got.pubrec, 'the PUBREC after the reconnect');
    again.s.write(mqttPacket.generate({ cmd: 'pubrel', messageId: 11 }));
    await until(() => again.got.pubcomp, 'the PUBCOMP');
    assert.equal(a.uplinks.filter((u) => u.topic === topic).length, 1, 'one uplink for one QoS 2 message');
    again.s.destroy();
  });
});
