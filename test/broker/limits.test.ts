/** Broker limits and hostile input: packet size, connection cap, connect timeout, fuzz at the MQTT and WebSocket ports, MQTTS. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { WebSocket } from 'ws';
import { startAccess, until, type Access } from './access.ts';
import { tempDir } from '../helpers/flux-process.ts';

/** Deterministic PRNG so a failing fuzz run can be replayed. */
function prng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
}

function closedWithin(s: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function goodClientWorks(a: Access): Promise<void> {
  const d = await a.device('dev-2');
  const before = a.uplinks.length;
  await d.publishAsync('/thermo/dev-2/properties/report', 'still serving', { qos: 1 });
  await until(() => a.uplinks.length > before, 'the good client’s uplink');
  await d.endAsync();
}

describe('broker limits', function () {
  let a: Access;
  afterEach(async () => {
    await a?.stop();
  });

  it('closes a connection whose packet declares more than the maximum packet size, before buffering it, and logs why', async () => {
    a = await startAccess({ broker: { maxPacketSize: 1024 } });
    const d = await a.device('dev-1');
    const closed = new Promise<void>((r) => d.once('close', () => r()));
    d.publish('/thermo/dev-1/properties/report', Buffer.alloc(4096, 1), { qos: 0 });
    await closed;
    d.end(true);
    assert.equal(a.uplinks.length, 0);
    await until(() => a.logs.find((l) => typeof l.reason === 'string' && /exceeds the maximum packet size 1024/.test(l.reason)), 'the logged reason');
    // a raw socket claiming a 200 MB packet is cut off without sending it
    const s = net.connect(a.broker.port(), '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]));
    assert.equal(await closedWithin(s, 2000), true);
    await goodClientWorks(a);
  });

  it('refuses connections past the limit with CONNACK "server unavailable"', async () => {
    a = await startAccess({ broker: { maxConnections: 2 } });
    const c1 = await a.device('dev-1');
    const c2 = await a.device('dev-2');
    await assert.rejects(a.device('dev-1', { clientId: 'dev-1/third' }), (err: Error & { code?: number }) => {
      assert.equal(err.code, 3);
      return true;
    });
    assert.ok(a.logs.some((l) => l.msg === 'MQTT connect refused: connection limit reached'));
    await c2.endAsync();
    await until(() => a.broker.connections() === 1, 'the slot freed');
    const c3 = await a.device('dev-2');
    assert.equal(c3.connected, true);
    await c1.endAsync();
  });

  it('closes a connection that sends no CONNECT within the connect timeout', async () => {
    a = await startAccess({ broker: { connectTimeoutMs: 300 } });
    const s = net.connect(a.broker.port(), '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    const t0 = Date.now();
    assert.equal(await closedWithin(s, 2000), true);
    assert.ok(Date.now() - t0 < 1500);
  });

  it('survives a fuzz of random bytes and malformed MQTT packets at the MQTT and WebSocket ports, then serves a good client', async function () {
    this.timeout(60_000);
    a = await startAccess({ broker: { maxPacketSize: 64 * 1024, connectTimeoutMs: 1000 } });
    const rnd = prng(20261127);
    const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'dev-1/fuzz', clean: true, keepalive: 10, username: 'dev-1', password: Buffer.from(a.secrets['dev-1']!) });
    const publish = mqttPacket.generate({ cmd: 'publish', topic: '/thermo/dev-1/properties/report', payload: Buffer.from('{"values":{}}'), qos: 1, messageId: 7, retain: false, dup: false });
    const inputs: Buffer[] = [];
    for (let i = 0; i < 60; i++) inputs.push(bytes(1 + Math.floor(rnd() * 300))); // random bytes
    for (let i = 0; i < 60; i++) {
      // valid CONNECT, then a mutated packet (flipped bytes, truncated, lying lengths)
      const p = Buffer.from(rnd() < 0.5 ? publish : connect);
      for (let k = 0; k < 1 + Math.floor(rnd() * 4); k++) p[Math.floor(rnd() * p.length)] = Math.floor(rnd() * 256);
      inputs.push(Buffer.concat([connect, rnd() < 0.3 ? p.subarray(0, Math.floor(rnd() * p.length)) : p]));
    }
    inputs.push(Buffer.concat([connect, Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01])])); // 5-byte remaining length
    inputs.push(Buffer.concat([connect, Buffer.from([0x00, 0x00])])); // reserved type 0
    inputs.push(Buffer.concat([connect, connect])); // a second CONNECT [MQTT-3.1.0-2]
    const sockets: Promise<unknown>[] = [];
    for (const input of inputs) {
      sockets.push(
        new Promise<void>((resolve) => {
          const s = net.connect(a.broker.port(), '127.0.0.1', () => {
            s.write(input);
            setTimeout(() => s.destroy(), 200);
          });
          s.on('error', () => {});
          s.on('close', () => resolve());
        }),
      );
      sockets.push(
        new Promise<void>((resolve) => {
          const ws = new WebSocket(`ws://127.0.0.1:${a.httpPort}/mqtt`, 'mqtt');
          ws.on('open', () => {
            ws.send(input);
            setTimeout(() => ws.terminate(), 200);
          });
          ws.on('error', () => {});
          ws.on('close', () => resolve());
        }),
      );
    }
    await Promise.all(sockets);
    await until(() => a.broker.connections() === 0, 'every fuzz connection closed', 5000);
    await goodClientWorks(a);
    // whatever got through the fuzz was a well-formed report of dev-1 itself
    for (const u of a.uplinks) assert.ok(u.deviceId === 'dev-1' || u.payload.toString() === 'still serving');
  });
});

describe('MQTTS', function () {
  let a: Access | undefined;
  after(async () => {
    await a?.stop();
  });

  it('serves MQTT over TLS on FLUX_MQTTS_PORT when FLUX_TLS_CERT and FLUX_TLS_KEY are set', async function () {
    const dir = tempDir('flux-tls-');
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    a = await startAccess({ env: { FLUX_TLS_CERT: cert, FLUX_TLS_KEY: key, FLUX_MQTTS_PORT: '0' } });
    assert.ok(a.broker.tlsPort() > 0);
    const c = mqtt.connect(`mqtts://127.0.0.1:${a.broker.tlsPort()}`, { clientId: 'dev-1', username: 'dev-1', password: a.secrets['dev-1'], ca: fs.readFileSync(cert), rejectUnauthorized: false, reconnectPeriod: 0 });
    try {
      await new Promise((resolve, reject) => {
        c.once('connect', resolve);
        c.once('error', reject);
      });
      await c.publishAsync('/thermo/dev-1/properties/report', 'over tls', { qos: 1 });
      await until(() => a!.uplinks.find((u) => u.payload.toString() === 'over tls'), 'the TLS uplink');
    } finally {
      await c.endAsync(true);
    }
  });
});
