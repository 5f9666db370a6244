/** The embedded broker with real MQTT clients (mqtt.js 3.1.1 and 5): authentication, ACL, QoS, retained messages, sessions, WebSocket. */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { startAccess, until, nextMessage, MQTT_VERSIONS, type Access } from './access.ts';

for (const protocolVersion of MQTT_VERSIONS) {
  const v = protocolVersion === 5 ? 'MQTT 5' : 'MQTT 3.1.1';
  describe(`broker with ${v} clients (mqtt.js)`, function () {
    let a: Access;
    beforeEach(async () => {
      a = await startAccess();
    });
    afterEach(async () => {
      await a.stop();
    });

    describe('authentication', () => {
      it('accepts a device with its id and secret', async () => {
        const c = await a.device('dev-1', { protocolVersion });
        assert.equal(c.connected, true);
      });

      for (const [what, username, password, reason] of [
        ['a wrong secret', 'dev-1', 'wrong-secret-0123456789', 'unknown device or wrong secret'],
        ['an unknown device', 'nobody', 'whatever-secret-0123456', 'unknown device or wrong secret'],
        ['a disabled device', 'dev-off', 'secret-dev-off-012345678', 'device disabled'],
        ['a device id with the admin token', 'dev-1', 'access-test-admin-token-0123456789', 'device id with a non-device password'],
      ] as const) {
        it(`refuses ${what} with "not authorized" and logs why`, async () => {
          await assert.rejects(a.device(username, { protocolVersion, password }), (err: Error & { code?: number }) => {
            assert.match(err.message, /Not authorized/i);
            assert.equal(err.code, protocolVersion === 5 ? 135 : 5);
            return true;
          });
          const line = await until(() => a.logs.find((l) => l.msg === 'MQTT connect refused' && l.username === username), 'the refusal log line');
          assert.equal(line.reason, reason);
          assert.equal(a.uplinks.length + a.statuses.length, 0, 'a refused connect changes nothing');
        });
      }

      it('accepts a platform client with the admin token and lets it subscribe to any device topic', async () => {
        const p = await a.platform({ protocolVersion });
        const granted = await p.subscribeAsync('/thermo/#', { qos: 1 });
        assert.equal(granted[0]!.qos, 1);
        const d = await a.device('dev-1', { protocolVersion });
        const got = nextMessage(p, (t) => t === '/thermo/dev-1/properties/report');
        await d.publishAsync('/thermo/dev-1/properties/report', '{"values":{"t":21.5}}', { qos: 1 });
        assert.equal((await got).payload.toString(), '{"values":{"t":21.5}}');
      });
    });

    describe('ACL', () => {
      it(protocolVersion === 5 ? 'refuses a publish outside the device prefix with PUBACK 0x87 (not authorized): no delivery, the reason logged' : 'refuses a publish outside the device prefix: no delivery, the connection is closed, the reason logged', async () => {
        const p = await a.platform({ protocolVersion });
        await p.subscribeAsync('#', { qos: 1 });
        const seen: string[] = [];
        p.on('message', (t) => seen.push(t));
        const d = await a.device('dev-1', { protocolVersion });
        if (protocolVersion === 5) {
          // MQTT 5 carries the refusal in the PUBACK reason code; the connection stays [MQTT-3.4.2.1]
          await assert.rejects(d.publishAsync('/thermo/dev-2/properties/report', 'spoof', { qos: 1 }), (err: Error & { code?: number }) => err.code === 0x87);
          assert.equal(d.connected, true);
        } else {
          // MQTT 3.1.1 has no way to say "refused" in a PUBACK: the server closes the connection
          const closed = new Promise<void>((r) => d.once('close', () => r()));
          d.publish('/thermo/dev-2/properties/report', 'spoof', { qos: 1 });
          await closed;
          await d.endAsync(true);
        }
        const ok = await a.device('dev-2', { protocolVersion });
        await ok.publishAsync('/thermo/dev-2/properties/report', 'real', { qos: 1 });
        await until(() => seen.includes('/thermo/dev-2/properties/report'), 'the real message');
        assert.equal(seen.filter((t) => t === '/thermo/dev-2/properties/report').length, 1, 'the spoofed message was not delivered');
        assert.equal(a.uplinks.length, 1);
        assert.equal(a.uplinks[0]!.payload.toString(), 'real');
        assert.ok(a.logs.some((l) => l.msg === 'MQTT publish refused: outside the device topic prefix' && l.topic === '/thermo/dev-2/properties/report'));
      });

      it(`refuses a subscription outside the command topic with ${protocolVersion === 5 ? '0x87 (not authorized)' : '0x80 (failure)'} and keeps the connection`, async () => {
        const d = await a.device('dev-1', { protocolVersion });
        // mqtt.js rejects a SUBACK with any refusal, so read the SUBACK packet itself
        const suback = new Promise<{ granted: number[] }>((resolve) => d.on('packetreceive', (p) => p.cmd === 'suback' && resolve(p as never)));
        d.subscribe(['/thermo/dev-2/command', '#', '/thermo/dev-1/command/#', '/thermo/dev-1/command'], { qos: 1 }, () => {});
        const no = protocolVersion === 5 ? 0x87 : 0x80;
        assert.deepEqual((await suback).granted, [no, no, 1, 1]);
        assert.equal(d.connected, true);
        await d.publishAsync('/thermo/dev-1/properties/report', 'still here', { qos: 1 });
        await until(() => a.uplinks.length === 1, 'the uplink after the refused subscription');
        assert.ok(a.logs.some((l) => l.msg === 'MQTT subscribe refused: devices subscribe only to their command topic' && l.filter === '#'));
      });
    });

    describe('messages', () => {
      it('routes properties/report and event/{id} onto the bus with their bytes, QoS 0 and 1', async () => {
        const d = await a.device('dev-1', { protocolVersion });
        const bytes = Buffer.from([0, 1, 2, 254, 255]);
        d.publish('/thermo/dev-1/properties/report', bytes, { qos: 0 });
        await d.publishAsync('/thermo/dev-1/event/overheat', '{"level":2}', { qos: 1 });
        await d.publishAsync('/thermo/dev-1/other/topic', 'not an uplink', { qos: 1 });
        await until(() => a.uplinks.length >= 2, 'two uplinks');
        const byType = Object.fromEntries(a.uplinks.map((u) => [u.type, u]));
        assert.deepEqual(byType.properties!.payload, bytes);
        assert.equal(byType.properties!.deviceId, 'dev-1');
        assert.equal(byType.properties!.productKey, 'thermo');
        assert.equal(byType.properties!.transport, 'mqtt');
        assert.equal(byType.event!.eventId, 'overheat');
        assert.equal(byType.event!.topic, '/thermo/dev-1/event/overheat');
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(a.uplinks.length, 2, 'other topics stay MQTT-only');
      });

      it('acknowledges every QoS 1 uplink of a burst on one connection, each with its own packet id', async () => {
        const d = await a.device('dev-1', { protocolVersion });
        const before = a.uplinks.length;
        const acks: number[] = [];
        d.on('packetreceive', (pkt) => {
          if (pkt.cmd === 'puback') acks.push(pkt.messageId!);
        });
        await Promise.all(Array.from({ length: 300 }, (_, i) => d.publishAsync('/thermo/dev-1/properties/report', `burst ${i}`, { qos: 1 })));
        assert.equal(acks.length, 300, 'one PUBACK per PUBLISH');
        assert.equal(new Set(acks).size, 300, 'each for its own packet id');
        await until(() => a.uplinks.length - before >= 300, 'all 300 uplinks');
        assert.deepEqual(a.uplinks.slice(before).map((u) => u.payload.toString()).sort(), Array.from({ length: 300 }, (_, i) => `burst ${i}`).sort());
      });

      if (protocolVersion === 5) {
        it('resolves MQTT 5 topic aliases per connection (the uplink carries the full topic)', async () => {
          const d = await a.device('dev-1', { protocolVersion, properties: { topicAliasMaximum: 10 } });
          const before = a.uplinks.length;
          await d.publishAsync('/thermo/dev-1/properties/report', 'first, setting alias 3', { qos: 1, properties: { topicAlias: 3 } });
          await d.publishAsync('', 'second, by alias 3 only', { qos: 1, properties: { topicAlias: 3 } });
          await until(() => a.uplinks.length - before >= 2, 'both uplinks');
          const got = a.uplinks.slice(before);
          assert.deepEqual(got.map((u) => [u.topic, u.payload.toString()]), [
            ['/thermo/dev-1/properties/report', 'first, setting alias 3'],
            ['/thermo/dev-1/properties/report', 'second, by alias 3 only'],
          ]);
        });
      }

      it('keeps a retained message for a later subscriber', async () => {
        const d = await a.device('dev-1', { protocolVersion });
        await d.publishAsync('/thermo/dev-1/state', 'on', { qos: 1, retain: true });
        const p = await a.platform({ protocolVersion });
        const got = nextMessage(p, (t) => t === '/thermo/dev-1/state');
        await p.subscribeAsync('/thermo/+/state', { qos: 1 });
        const m = await got;
        assert.equal(m.payload.toString(), 'on');
        assert.equal(m.packet.retain, true);
      });

      it('queues a command for a persistent session and delivers it after reconnect', async () => {
        const clientId = 'dev-1/persistent';
        const sessionOpts = protocolVersion === 5 ? { clean: false, properties: { sessionExpiryInterval: 300 } } : { clean: false };
        const d1 = await a.device('dev-1', { protocolVersion, clientId, ...sessionOpts });
        await d1.subscribeAsync('/thermo/dev-1/command', { qos: 1 });
        const liveMsg = nextMessage(d1, (t) => t === '/thermo/dev-1/command');
        const live = await a.broker.sendCommand((await a.ctx.registry.devices.identity('dev-1'))!, Buffer.from('{"command":"live"}'));
        assert.equal(live.status, 'delivered');
        assert.equal((await liveMsg).payload.toString(), '{"command":"live"}');
        await d1.endAsync();
        await until(() => a.broker.connections() === 0, 'the disconnect');
        const r = await a.broker.sendCommand((await a.ctx.registry.devices.identity('dev-1'))!, Buffer.from('{"command":"reboot"}'));
        assert.equal(r.status, 'queued');
        const d2 = mqtt.connect(a.mqttUrl, { protocolVersion, clientId, ...sessionOpts, username: 'dev-1', password: a.secrets['dev-1'], reconnectPeriod: 0 });
        try {
          const m = await nextMessage(d2, (t) => t === '/thermo/dev-1/command');
          assert.equal(m.payload.toString(), '{"command":"reboot"}');
          assert.equal(m.packet.qos, 1);
        } finally {
          await d2.endAsync(true);
        }
      });

      it('answers offline for a device with no connection and no persistent session', async () => {
        const r = await a.broker.sendCommand((await a.ctx.registry.devices.identity('dev-2'))!, Buffer.from('{}'));
        assert.equal(r.status, 'offline');
      });

      it('serves MQTT over WebSocket at /mqtt with the same authentication and routing', async () => {
        const url = `ws://127.0.0.1:${a.httpPort}/mqtt`;
        await assert.rejects(
          new Promise((resolve, reject) => {
            const c = mqtt.connect(url, { protocolVersion, clientId: 'dev-1', username: 'dev-1', password: 'wrong-secret-0123456789', reconnectPeriod: 0 });
            c.once('connect', resolve);
            c.once('error', (e) => {
              c.end(true);
              reject(e);
            });
          }),
          /Not authorized/i,
        );
        const c = mqtt.connect(url, { protocolVersion, clientId: 'dev-1', username: 'dev-1', password: a.secrets['dev-1'], reconnectPeriod: 0 });
        try {
          await new Promise((resolve, reject) => {
            c.once('connect', resolve);
            c.once('error', reject);
          });
          await c.publishAsync('/thermo/dev-1/properties/report', 'over ws', { qos: 1 });
          await until(() => a.uplinks.find((u) => u.payload.toString() === 'over ws'), 'the WebSocket uplink');
        } finally {
          await c.endAsync(true);
        }
      });
    });
  });
}

describe('broker WebSocket upgrade', () => {
  let a: Access;
  before(async () => {
    a = await startAccess();
  });
  after(async () => {
    await a.stop();
  });

  it('leaves upgrades of other paths to their own listeners', async () => {
    let otherSeen = false;
    a.http.on('upgrade', (req, socket) => {
      if (req.url === '/other') {
        otherSeen = true;
        socket.end('HTTP/1.1 418 Teapot\r\n\r\n');
      }
    });
    const { WebSocket } = await import('ws');
    const ws = new WebSocket(`ws://127.0.0.1:${a.httpPort}/other`);
    const err = await new Promise<Error>((resolve) => ws.once('error', resolve));
    assert.match(err.message, /418/);
    assert.equal(otherSeen, true);
  });
});
