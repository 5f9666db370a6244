/**
 * A device whose access an operator revokes loses the connections it holds (one real FLUX process,
 * SQLite): disabled, deleted or given a new secret through the API, its MQTT connections (mqtt.js
 * 3.1.1 and 5, mosquitto_sub) and its TCP connection are closed, MQTT 5 clients are told why
 * (DISCONNECT 0x98 administrative action, 0x87 not authorized for a new secret), its status becomes
 * offline, and a reconnect with what it had is refused.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { freePort, until } from '../cluster/cluster.ts';
import { spawnCollect } from './access.ts';

interface Watched {
  client: MqttClient;
  /** the reason code of a DISCONNECT the server sent, once one came */
  disconnect?: { reasonCode?: number; reason?: string };
  closed: boolean;
}

function watch(client: MqttClient): Watched {
  const w: Watched = { client, closed: false };
  client.on('disconnect', (packet) => (w.disconnect = { reasonCode: packet.reasonCode, reason: packet.properties?.reasonString }));
  client.on('close', () => (w.closed = true));
  client.on('error', () => {});
  return w;
}

describe('revoked device access closes its connections (single node)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let tcpPort: number;
  const secrets: Record<string, string> = {};

  const mqttConnect = (id: string, opts: IClientOptions = {}) =>
    mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { username: id, password: secrets[id], clientId: `${id}/t${Math.random().toString(36).slice(2, 6)}`, reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  const statusOf = async (id: string) => ((await flux.api('GET', `/api/devices/${id}`)).body as { status: string }).status;
  const device = async (id: string, product = 'rv') => {
    const d = await flux.api('POST', '/api/devices', { id, product_id: product });
    assert.equal(d.status, 201, JSON.stringify(d.body));
    secrets[id] = d.body.secret;
  };
  /** the CONNACK code a new connection with this secret gets (0: accepted) */
  const refusal = async (id: string, protocolVersion: 4 | 5, secret = secrets[id]) => {
    try {
      const c = await mqttConnect(id, { protocolVersion, password: secret });
      await c.endAsync();
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  };

  before(async function () {
    this.timeout(120_000);
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
    tcpPort = await freePort();
    assert.equal((await flux.api('POST', '/api/products', { key: 'rv', name: 'rv' })).status, 201);
    const tcp = await flux.api('POST', '/api/products', { key: 'rvtcp', name: 'rvtcp', transport: { tcp: { port: tcpPort, framing: { type: 'delimiter', delimiter: '0a' } } } });
    assert.equal(tcp.status, 201, JSON.stringify(tcp.body));
  });
  after(async () => {
    await flux?.stop();
  });

  it('MQTT 5: disabled through the API → DISCONNECT 0x98, offline, a reconnect refused (0x87), enabled again → accepted', async () => {
    await device('rv-5');
    const w = watch(await mqttConnect('rv-5', { protocolVersion: 5 }));
    await until(async () => (await statusOf('rv-5')) === 'online', 'rv-5 online');
    assert.equal((await flux.api('PATCH', '/api/devices/rv-5', { enabled: false })).status, 200);
    await until(() => w.closed, 'the connection closed');
    assert.deepEqual(w.disconnect, { reasonCode: 0x98, reason: 'device disabled' });
    await until(async () => (await statusOf('rv-5')) === 'offline', 'rv-5 offline');
    assert.equal(await refusal('rv-5', 5), 0x87);
    assert.equal((await flux.api('PATCH', '/api/devices/rv-5', { enabled: true })).status, 200);
    assert.equal(await refusal('rv-5', 5), 0);
  });

  it('MQTT 3.1.1: deleted through the API → the socket closes, a reconnect refused (CONNACK 5)', async () => {
    await device('rv-4');
    const w = watch(await mqttConnect('rv-4', { protocolVersion: 4 }));
    await until(async () => (await statusOf('rv-4')) === 'online', 'rv-4 online');
    assert.equal((await flux.api('DELETE', '/api/devices/rv-4')).status, 204);
    await until(() => w.closed, 'the connection closed');
    assert.equal(w.disconnect, undefined); // 3.1.1 has no server DISCONNECT
    assert.equal(await refusal('rv-4', 4), 5);
  });

  it('a new secret → DISCONNECT 0x87 to the connection that used the old one, the old one refused, the new one accepted', async () => {
    await device('rv-rot');
    const w = watch(await mqttConnect('rv-rot', { protocolVersion: 5 }));
    await until(async () => (await statusOf('rv-rot')) === 'online', 'rv-rot online');
    const old = secrets['rv-rot']!;
    // a change that revokes nothing leaves the connection alone
    assert.equal((await flux.api('PATCH', '/api/devices/rv-rot', { name: 'renamed' })).status, 200);
    const rotated = await flux.api('POST', '/api/devices/rv-rot/secret', {});
    assert.equal(rotated.status, 200);
    await until(() => w.closed, 'the connection closed');
    assert.deepEqual(w.disconnect, { reasonCode: 0x87, reason: 'secret rotated' });
    assert.equal(await refusal('rv-rot', 5, old), 0x87);
    secrets['rv-rot'] = rotated.body.secret;
    const again = watch(await mqttConnect('rv-rot', { protocolVersion: 5 }));
    await until(async () => (await statusOf('rv-rot')) === 'online', 'rv-rot online with its new secret');
    await again.client.endAsync();
  });

  it('a device renamed keeps its connection; only the revoking change closes it', async () => {
    await device('rv-keep');
    const w = watch(await mqttConnect('rv-keep', { protocolVersion: 5 }));
    await until(async () => (await statusOf('rv-keep')) === 'online', 'rv-keep online');
    assert.equal((await flux.api('PATCH', '/api/devices/rv-keep', { name: 'still here', tags: { a: 1 } })).status, 200);
    // the rename is applied before the next request; a publish round trip shows the connection still works
    await w.client.publishAsync('/rv/rv-keep/properties/report', JSON.stringify({ values: { t: 1 } }), { qos: 1 });
    assert.equal(w.closed, false);
    assert.equal((await flux.api('PATCH', '/api/devices/rv-keep', { enabled: false })).status, 200);
    await until(() => w.closed, 'the connection closed');
  });

  for (const V of ['mqttv311', 'mqttv5']) {
    it(`mosquitto_sub (${V}) of a device is disconnected when the device is disabled`, async () => {
      const id = `rv-mosq-${V.slice(5)}`;
      await device(id);
      // -d: mosquitto_sub prints the packets it receives, the server's DISCONNECT among them
      const sub = spawnCollect('mosquitto_sub', ['-d', '-V', V, '-h', '127.0.0.1', '-p', String(flux.mqtt), '-i', `${id}/sub`, '-u', id, '-P', secrets[id]!, '-t', `/rv/${id}/command`, '-q', '1']);
      try {
        await until(async () => (await statusOf(id)) === 'online', `${id} online`, 15_000);
        assert.equal((await flux.api('PATCH', `/api/devices/${id}`, { enabled: false })).status, 200);
        await until(async () => (await statusOf(id)) === 'offline', `${id} offline`, 15_000);
        const exit = await until(() => ((sub.child.exitCode ?? sub.child.signalCode) !== null ? { code: sub.child.exitCode } : null), 'mosquitto_sub exiting', 20_000);
        if (V === 'mqttv5') {
          // told why (0x98 = 152), after which mosquitto_sub ends without retrying
          assert.match(sub.out.stdout, /Received DISCONNECT \(152\)/);
        } else {
          // 3.1.1: the socket closed; mosquitto_sub's reconnect is refused, so it gives up
          assert.match(sub.out.stdout, /received CONNACK \(5\)/);
          assert.equal(exit.code, 5, sub.out.stderr);
        }
      } finally {
        sub.kill();
      }
    });
  }

  it('TCP: a logged-in device disabled through the API → its socket closes, offline, a new login denied', async () => {
    const d = await flux.api('POST', '/api/devices', { id: 'rv-tcp', product_id: 'rvtcp' });
    assert.equal(d.status, 201);
    const login = `${JSON.stringify({ device_id: 'rv-tcp', secret: d.body.secret })}\n`;
    const open = async () => {
      const s = net.connect(tcpPort, '127.0.0.1');
      const got: string[] = [];
      let closed = false;
      s.on('data', (b) => got.push(String(b)));
      s.on('close', () => (closed = true));
      s.on('error', () => {});
      s.write(login);
      await until(() => got.join('').includes('"login"') || closed, 'the login answer', 10_000);
      return { s, got, isClosed: () => closed };
    };
    // the TCP listener of a new product opens at the ingress' next sync (every 5 s)
    const conn = await until(async () => {
      const c = await open().catch(() => null);
      if (c?.got.join('').includes('"login":"ok"')) return c;
      c?.s.destroy();
      return null;
    }, 'the TCP login accepted', 20_000, 250);
    await until(async () => (await statusOf('rv-tcp')) === 'online', 'rv-tcp online');
    assert.equal((await flux.api('PATCH', '/api/devices/rv-tcp', { enabled: false })).status, 200);
    await until(() => conn.isClosed(), 'the TCP connection closed');
    await until(async () => (await statusOf('rv-tcp')) === 'offline', 'rv-tcp offline');
    const again = await open();
    assert.match(again.got.join(''), /"login":"denied"/);
    again.s.destroy();
  });
});
