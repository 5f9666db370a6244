/**
 * A device's will obeys the device topic ACL in a cluster too. The node that publishes the wills of
 * a dead node (aedes' will sweep) has no client for them and authorised them as the broker's own
 * messages: device m1 on node A, with a will on m2's command topic, made node B deliver a forged
 * command to m2 once node A was killed. The will topic is now checked at CONNECT.
 */
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { HEARTBEAT_MS, connect, registerDevices, startCluster, until, type TestCluster } from './cluster.ts';

describe('cluster: a will outside the device topic prefix', function () {
  this.timeout(120_000);
  let c: TestCluster;
  const clients: MqttClient[] = [];
  before(async () => {
    c = await startCluster(2);
  });
  after(async () => {
    for (const cl of clients) cl.end(true);
    await c?.stop();
  });

  it("is refused at CONNECT, and a dead node's wills never reach another device", async () => {
    const [a, b] = c.nodes as [(typeof c.nodes)[0], (typeof c.nodes)[0]];
    const secrets = await registerDevices(a, 'meter', ['m1', 'm2']);
    const victim = await connect(b, { clientId: 'm2', username: 'm2', password: secrets.m2 });
    clients.push(victim);
    await victim.subscribeAsync('/meter/m2/command', { qos: 1 });
    const forged: string[] = [];
    victim.on('message', (_t, p) => forged.push(p.toString()));
    const watcher = await connect(b, { clientId: 'watcher', username: 'platform', password: a.token });
    clients.push(watcher);
    await watcher.subscribeAsync('/meter/m1/#', { qos: 1 });
    const ownWill: string[] = [];
    watcher.on('message', (_t, p) => ownWill.push(p.toString()));

    const will = (topic: string, payload: string) => ({ topic, payload: Buffer.from(payload), qos: 1 as const, retain: false });
    const refused = await connect(a, { clientId: 'm1/evil', username: 'm1', password: secrets.m1, will: will('/meter/m2/command', 'forged') }).then(
      (cl) => (clients.push(cl), undefined),
      (err: Error & { code?: number }) => err,
    );
    // a will on its own topics is fine, and is what the sweep on node B publishes once A is dead
    const own = await connect(a, { clientId: 'm1', username: 'm1', password: secrets.m1, will: will('/meter/m1/status', 'gone') });
    clients.push(own);
    own.on('error', () => {});

    a.child.kill('SIGKILL');
    await until(() => ownWill.includes('gone'), "m1's own will, published by node B", 20 * HEARTBEAT_MS);
    await new Promise((r) => setTimeout(r, 1000)); // the sweep publishes a dead node's wills together
    assert.deepEqual(forged, [], 'a forged command reached m2');
    assert.ok(refused, 'the CONNECT with a will on another device’s topic was accepted');
    assert.equal(refused.code, 5);
  });
});
