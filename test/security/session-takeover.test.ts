/**
 * One device must not take over another's MQTT session (docs/broker.md "Sessions belong to devices"):
 * the attack as found, with mqtt.js (MQTT 3.1.1 and 5) and mosquitto_sub: device A logs in with its
 * own secret but device B's client id, to receive B's queued command or to disconnect B.
 */
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { startInstance, mqttConnect, run, until, type Instance } from './helpers.ts';
import { TEST_TOKEN } from '../helpers/flux-process.ts';

const IDENTIFIER_REJECTED = { 4: 2, 5: 0x85 } as const;

describe('security: MQTT sessions belong to devices', function () {
  this.timeout(60_000);
  let f: Instance;
  const secret: Record<string, string> = {};
  const open: MqttClient[] = [];

  before(async function () {
    f = await startInstance();
    assert.equal((await f.api('POST', '/api/products', { key: 'lamp', name: 'Lamp' })).status, 201);
    for (const id of ['dev_a', 'dev_b', 'dev_c']) {
      const d = await f.api('POST', '/api/devices', { id, product_id: 'lamp' });
      assert.equal(d.status, 201);
      secret[id] = d.body.secret;
    }
  });

  afterEach(function () {
    for (const c of open.splice(0)) c.end(true);
  });

  after(async function () {
    await f?.stop();
  });

  const as = async (device: string, clientId: string, protocolVersion: 4 | 5, extra: Record<string, unknown> = {}) => {
    const r = await mqttConnect(f.mqttUrl, { username: device, password: secret[device], clientId, protocolVersion, ...extra });
    if (r.client) open.push(r.client);
    return r;
  };

  for (const v of [4, 5] as const) {
    const persistent = v === 5 ? { clean: false, properties: { sessionExpiryInterval: 3600 } } : { clean: false };

    it(`MQTT ${v === 4 ? '3.1.1' : '5'}: device A with B's client id gets neither B's queued command nor its subscription`, async function () {
      const clientId = v === 4 ? 'dev_b' : 'dev_b/v5';
      // B: persistent session, subscribed to its command topic, then gone
      const b = await as('dev_b', clientId, v, persistent);
      assert.ok(b.client, `B connects with its own client id: ${b.error}`);
      await b.client.subscribeAsync('/lamp/dev_b/command', { qos: 1 });
      await b.client.endAsync();
      const cmd = await f.api('POST', '/api/devices/dev_b/commands', { command: 'TurnOn', params: { for: 'B' } });
      assert.equal(cmd.status, 202, `the command is queued for B: ${JSON.stringify(cmd.body)}`);

      // A: its own secret, B's client id, clean=false
      const a = await mqttConnect(f.mqttUrl, { username: 'dev_a', password: secret.dev_a, clientId, protocolVersion: v, ...persistent });
      const received: string[] = [];
      if (a.client) {
        open.push(a.client);
        a.client.on('message', (t, p) => received.push(`${t} ${p}`));
        await new Promise((r) => setTimeout(r, 500));
      }
      assert.deepEqual(received, [], "A received B's queued command");
      assert.equal(a.client, undefined, "A was let into B's session");
      assert.equal(a.refused, IDENTIFIER_REJECTED[v], `refused with "identifier rejected" (${a.error})`);

      // nothing was lost: B comes back and gets its command
      const back = await as('dev_b', clientId, v, persistent);
      assert.ok(back.client);
      const got = await new Promise<string>((resolve) => back.client!.once('message', (_t, p) => resolve(String(p))));
      assert.match(got, /TurnOn/);
    });

    it(`MQTT ${v === 4 ? '3.1.1' : '5'}: device A reusing B's live client id does not disconnect B`, async function () {
      const b = await as('dev_b', 'dev_b/live', v);
      assert.ok(b.client);
      let bClosed = false;
      b.client.on('close', () => (bClosed = true));
      const a = await as('dev_a', 'dev_b/live', v);
      assert.equal(a.client, undefined, 'A connected with B\u2019s live client id');
      assert.equal(a.refused, IDENTIFIER_REJECTED[v]);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(bClosed, false, 'B was disconnected');
      assert.equal(b.client.connected, true);
    });

    it(`MQTT ${v === 4 ? '3.1.1' : '5'}: refuses client ids that are not the device's, and ids over 128 characters`, async function () {
      for (const clientId of ['shared-X', 'dev_b', 'dev_ax', 'dev_a-1', 'dev_b/dev_a', 'mqttjs_1234']) {
        const r = await as('dev_a', clientId, v);
        assert.equal(r.client, undefined, `dev_a connected as '${clientId}'`);
        assert.equal(r.refused, IDENTIFIER_REJECTED[v], `'${clientId}': ${r.error}`);
      }
      for (const clientId of ['dev_a', 'dev_a/1', `dev_a/${'x'.repeat(128 - 6)}`]) {
        const r = await as('dev_a', clientId, v);
        assert.ok(r.client, `dev_a refused as '${clientId.slice(0, 20)}…' (${clientId.length}): ${r.error}`);
      }
      for (const clientId of [`dev_a/${'x'.repeat(128 - 5)}`, `dev_a/${'x'.repeat(61_440)}`]) {
        const r = await as('dev_a', clientId, v);
        assert.equal(r.client, undefined, `a client id of ${clientId.length} characters was accepted`);
        assert.equal(r.refused, IDENTIFIER_REJECTED[v]);
      }
    });
  }

  it('a platform client (admin token) cannot take a device\u2019s client id', async function () {
    const b = await as('dev_c', 'dev_c', 4);
    assert.ok(b.client);
    let bClosed = false;
    b.client.on('close', () => (bClosed = true));
    const p = await mqttConnect(f.mqttUrl, { username: 'dashboard', password: TEST_TOKEN, clientId: 'dev_c', protocolVersion: 4 });
    if (p.client) open.push(p.client);
    assert.equal(p.refused, 2, `platform client got device dev_c's session (${p.error})`);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(bClosed, false);
    const ok = await mqttConnect(f.mqttUrl, { username: 'dashboard', password: TEST_TOKEN, clientId: 'dashboard-1', protocolVersion: 4 });
    assert.ok(ok.client, 'a platform client id that names no device is fine');
    open.push(ok.client);
  });

  it('mosquitto_sub: A with B\u2019s client id is refused and gets nothing; B with its own gets its queued command', async function () {
    const port = String(f.mqtt);
    const sub = (user: string, id: string, ms: number) =>
      run('mosquitto_sub', ['-V', 'mqttv311', '-h', '127.0.0.1', '-p', port, '-u', user, '-P', secret[user]!, '-i', id, '-c', '-q', '1', '-t', `/lamp/${user}/command`, '-W', String(ms / 1000)], ms + 5000);
    // B's persistent session with its subscription (mosquitto_sub leaves after -W seconds)
    const first = await sub('dev_b', 'dev_b/mosq', 1000);
    assert.doesNotMatch(first.stderr, /refused/i, first.stderr);
    const cmd = await f.api('POST', '/api/devices/dev_b/commands', { command: 'TurnOff', params: {} });
    assert.equal(cmd.status, 202, JSON.stringify(cmd.body));
    const attacker = await run('mosquitto_sub', ['-V', 'mqttv311', '-h', '127.0.0.1', '-p', port, '-u', 'dev_a', '-P', secret.dev_a!, '-i', 'dev_b/mosq', '-c', '-q', '1', '-t', '/lamp/dev_a/command', '-W', '2'], 8000);
    assert.equal(attacker.stdout, '', 'the attacker received a message');
    assert.match(attacker.stderr, /identifier rejected/i);
    const owner = await until('B receives its command', async () => {
      const r = await sub('dev_b', 'dev_b/mosq', 2000);
      return r.stdout.includes('TurnOff') ? r : undefined;
    });
    assert.match(owner.stdout, /"command":"TurnOff"/);
  });
});
