/**
 * Cluster mode with three FLUX processes on one Redis and one PostgreSQL database (docs/cluster.md;
 * presence and /api/cluster): delivery, retained messages, sessions and commands across nodes, a
 * client id taken over from another node, traces, the live feed and GraphQL subscriptions read through any node, a killed node's devices
 * going offline, nodes joining and leaving.
 */
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import os from 'node:os';
import WebSocket from 'ws';
import { collect, wsClient } from '../graphql/helpers.ts';
import { TEST_TOKEN } from '../helpers/flux-process.ts';
import { HEARTBEAT_MS, connect, registerDevices, startCluster, until, type TestCluster, type TestNode } from './cluster.ts';

const PRODUCT = 'meter';
const DEVICES = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9', 'm10'];

async function metric(node: TestNode, name: string): Promise<number> {
  const res = await node.api('GET', '/api/metrics');
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(String(res.body));
  return m ? Number(m[1]) : 0;
}

async function status(node: TestNode, id: string): Promise<string> {
  return (await node.api('GET', `/api/devices/${id}`)).body.status;
}

async function clusterOf(node: TestNode) {
  const res = await node.api('GET', '/api/cluster');
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return res.body as { mode: string; self: string; nodes: { id: string; status: string; healthy: boolean; mqtt_connections: number; devices_online: number; uplinks_per_s: number; heartbeat_age_ms: number | null }[]; totals: { nodes_up: number } };
}

describe('cluster: three nodes on one Redis', function () {
  this.timeout(60_000);
  let c: TestCluster;
  let a: TestNode, b: TestNode, cNode: TestNode;
  let secrets: Record<string, string>;
  const clients: MqttClient[] = [];
  const device = async (node: TestNode, id: string, extra: Record<string, unknown> = {}) => {
    const cl = await connect(node, { clientId: id, username: id, password: secrets[id], ...extra });
    clients.push(cl);
    return cl;
  };
  const platform = async (node: TestNode, clientId: string, extra: Record<string, unknown> = {}) => {
    const cl = await connect(node, { clientId, username: 'platform', password: TEST_TOKEN, ...extra });
    clients.push(cl);
    return cl;
  };

  before(async function () {
    this.timeout(180_000);
    c = await startCluster(3);
    [a, b, cNode] = c.nodes as [TestNode, TestNode, TestNode];
    secrets = await registerDevices(a, PRODUCT, DEVICES);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((cl) => cl.endAsync(true).catch(() => undefined)));
  });
  after(async () => {
    await c?.stop();
  });

  it('lists the three nodes, up and healthy, on every node', async () => {
    for (const n of [a, b, cNode]) {
      const view = await clusterOf(n);
      assert.equal(view.mode, 'cluster');
      assert.equal(view.self, n.id);
      assert.deepEqual(view.nodes.map((x) => [x.id, x.status]), [['node-a', 'up'], ['node-b', 'up'], ['node-c', 'up']]);
      await until(async () => (await clusterOf(n)).nodes.every((x) => x.healthy), 'every node healthy', 10_000, 200);
      assert.equal(view.totals.nodes_up, 3);
    }
  });

  it('delivers 100 QoS 1 publishes from a device on A to subscribers on A and B, and processes each uplink once, on A', async () => {
    const got: Record<string, number[]> = { a: [], b: [] };
    // one subscriber at QoS 0, one at QoS 1: each must see every publish exactly once
    for (const [name, node, qos] of [['a', a, 0], ['b', b, 1]] as const) {
      const sub = await platform(node, `watcher-${name}`);
      sub.on('message', (_t, p) => got[name]!.push(JSON.parse(String(p)).n));
      await sub.subscribeAsync(`/${PRODUCT}/m1/#`, { qos });
    }
    const uplinksA = await metric(a, 'flux_mqtt_uplinks_total');
    const dev = await device(a, 'm1');
    for (let i = 0; i < 100; i++) await dev.publishAsync(`/${PRODUCT}/m1/properties/report`, JSON.stringify({ n: i }), { qos: 1 });
    await until(() => got.a!.length >= 100 && got.b!.length >= 100, '100 messages on A and on B');
    await new Promise((r) => setTimeout(r, 200)); // a duplicate would arrive by now
    assert.deepEqual(got.b, [...Array(100).keys()], 'on B, each once, in order');
    assert.deepEqual(got.a, [...Array(100).keys()], 'on A (local), each once, in order');
    // the uplink path (journal, bus, flows) runs on the node that received the publish, only there
    await until(async () => (await metric(a, 'flux_pipeline_messages_total')) >= 100, 'A processed them');
    assert.equal((await metric(a, 'flux_mqtt_uplinks_total')) - uplinksA, 100);
    assert.equal(await metric(b, 'flux_mqtt_uplinks_total'), 0);
    assert.equal(await metric(b, 'flux_pipeline_messages_total'), 0);
    assert.equal(await metric(cNode, 'flux_pipeline_messages_total'), 0);
  });

  it('sends a publish through Redis only while another node subscribes to its topic, and delivers from the first one after the SUBACK', async () => {
    const publishes = async () => Number(/^cmdstat_publish:calls=(\d+)/m.exec(await c.redis.cli('INFO', 'commandstats'))?.[1] ?? 0);
    const dev = await device(a, 'm4');
    const send = async (from: number, to: number) => {
      for (let n = from; n < to; n++) await dev.publishAsync(`/${PRODUCT}/m4/properties/report`, JSON.stringify({ n }), { qos: 1 });
    };
    // nobody on B or C listens to m4's topics: its uplinks stay on A (the few PUBLISHes are other traffic)
    let p0 = await publishes();
    await send(0, 50);
    assert.ok((await publishes()) - p0 < 10, `${(await publishes()) - p0} PUBLISHes for 50 uplinks nobody elsewhere listens to`);
    // a subscriber on B: its filter is announced before its SUBACK, so A's very next publish reaches it
    const sub = await platform(b, 'watcher-m4');
    const got: number[] = [];
    sub.on('message', (_t, p) => got.push(JSON.parse(String(p)).n));
    await sub.subscribeAsync(`/${PRODUCT}/+/properties/report`, { qos: 1 });
    p0 = await publishes();
    await send(50, 100);
    await until(() => got.length >= 50, "B's subscriber has A's 50 publishes", 10_000);
    assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => 50 + i));
    assert.ok((await publishes()) - p0 >= 50);
    // unsubscribed: A hears of it shortly after the UNSUBACK and keeps the next uplinks to itself again
    await sub.unsubscribeAsync(`/${PRODUCT}/+/properties/report`);
    let n = 100;
    await until(async () => {
      const before = await publishes();
      await send(n, n + 20);
      n += 20;
      return (await publishes()) - before < 10;
    }, 'uplinks off Redis again', 10_000, 100);
    assert.equal(got.length, 50);
  });

  it('keeps a retained message set through A for a subscriber that arrives on C', async () => {
    const dev = await device(a, 'm2');
    await dev.publishAsync(`/${PRODUCT}/m2/properties/report`, '{"retained":true}', { qos: 1, retain: true });
    const sub = await platform(cNode, 'late-c');
    const got = new Promise<{ payload: string; retain: boolean }>((resolve) => sub.on('message', (_t, p, packet) => resolve({ payload: String(p), retain: packet.retain })));
    await sub.subscribeAsync(`/${PRODUCT}/m2/properties/report`, { qos: 1 });
    const msg = await got;
    assert.equal(msg.payload, '{"retained":true}');
    assert.equal(msg.retain, true);
  });

  it("resumes a device's persistent session on another node with the commands queued for it", async () => {
    const first = await device(b, 'm3', { clean: false });
    await first.subscribeAsync(`/${PRODUCT}/m3/command`, { qos: 1 });
    await first.endAsync();
    await until(async () => (await status(a, 'm3')) === 'offline', 'm3 offline');
    const sent: string[] = [];
    for (const n of [1, 2, 3]) {
      const r = await a.api('POST', '/api/devices/m3/commands', { command: 'set', params: { n } });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      assert.equal(r.body.status, 'queued', JSON.stringify(r.body));
      sent.push(r.body.id);
    }
    const got: string[] = [];
    // listening before CONNECT: the queued commands follow the CONNACK at once
    const again = mqtt.connect(`mqtt://127.0.0.1:${cNode.mqtt}`, { clientId: 'm3', username: 'm3', password: secrets.m3, clean: false, reconnectPeriod: 0 });
    clients.push(again);
    again.on('message', (_t, p) => got.push(JSON.parse(String(p)).id));
    await until(() => got.length >= 3, 'three queued commands on C');
    assert.deepEqual(got, sent);
  });

  it('closes the older connection when a client id connects again on another node, and the device stays online', async () => {
    const onA = await device(a, 'm4');
    const closed = new Promise<void>((resolve) => onA.once('close', () => resolve()));
    await until(async () => (await status(b, 'm4')) === 'online', 'm4 online');
    const onB = await device(b, 'm4');
    await closed; // [MQTT-3.1.4-2] across nodes: $SYS/<node>/new/clients
    assert.equal(onB.connected, true);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await status(cNode, 'm4'), 'online');
    await onB.endAsync();
    await until(async () => (await status(cNode, 'm4')) === 'offline', 'm4 offline after its last connection');
  });

  it('keeps an MQTT 5 session taken over by another node past the expiry interval of the node it left', async () => {
    const v5 = { protocolVersion: 5 as const, clean: false, properties: { sessionExpiryInterval: 2 } };
    const onA = await device(a, 'm6', v5);
    await onA.subscribeAsync(`/${PRODUCT}/m6/command`, { qos: 1 });
    const closed = new Promise<void>((resolve) => onA.once('close', () => resolve()));
    const onB = await device(b, 'm6', v5);
    await closed;
    // past A's expiry timer: had it fired, A would have wiped the session B now serves
    await new Promise((r) => setTimeout(r, 2600));
    await onB.endAsync();
    const r = await cNode.api('POST', '/api/devices/m6/commands', { command: 'kept' });
    assert.equal(r.status, 202, `the session's subscription survived: ${JSON.stringify(r.body)}`);
  });

  it("sends a command through A's API to a device connected to B", async () => {
    const dev = await device(b, 'm5');
    const got = new Promise<{ topic: string; body: { command: string; params: unknown } }>((resolve) => dev.on('message', (topic, p) => resolve({ topic, body: JSON.parse(String(p)) })));
    await dev.subscribeAsync(`/${PRODUCT}/m5/command`, { qos: 1 });
    const r = await a.api('POST', '/api/devices/m5/commands', { command: 'reboot', params: { delay: 2 } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.status, 'delivered');
    assert.equal(r.body.transport, 'mqtt');
    const msg = await got;
    assert.equal(msg.topic, `/${PRODUCT}/m5/command`);
    assert.equal(msg.body.command, 'reboot');
    assert.deepEqual(msg.body.params, { delay: 2 });
  });

  it("closes the connection a device holds on B when A's API disables it, deletes it or gives it a new secret", async () => {
    const extra = await a.api('POST', '/api/devices', { id: 'revoked', product_id: PRODUCT });
    assert.equal(extra.status, 201, JSON.stringify(extra.body));
    secrets.revoked = extra.body.secret;
    const held = async (reason: { code: number; text: string }, revoke: () => Promise<number>) => {
      // B may still hold the identity before A's last change (re-enabled, new secret) until A's notice arrives
      const cl = await until(() => device(b, 'revoked', { protocolVersion: 5 }).catch(() => undefined), 'connected on B');
      let told: { reasonCode?: number; reason?: string } | undefined;
      let closed = false;
      cl.on('disconnect', (p) => (told = { reasonCode: p.reasonCode, reason: p.properties?.reasonString }));
      cl.on('close', () => (closed = true));
      await until(async () => (await status(a, 'revoked')) === 'online', 'online, seen through A');
      assert.equal(await revoke(), reason.code === 0x87 ? 200 : reason.text === 'device deleted' ? 204 : 200);
      // B learns of the change from A's notice and closes the connection it holds
      await until(() => closed, 'the connection on B closed');
      assert.deepEqual(told, { reasonCode: reason.code, reason: reason.text });
    };
    await held({ code: 0x98, text: 'device disabled' }, async () => (await a.api('PATCH', '/api/devices/revoked', { enabled: false })).status);
    await until(async () => (await status(a, 'revoked')) === 'offline', 'offline');
    // a reconnect on C is refused
    await assert.rejects(device(cNode, 'revoked', { protocolVersion: 5 }), (err: { code?: number }) => err.code === 0x87);
    assert.equal((await a.api('PATCH', '/api/devices/revoked', { enabled: true })).status, 200);
    const old = secrets.revoked;
    await held({ code: 0x87, text: 'secret rotated' }, async () => {
      const r = await a.api('POST', '/api/devices/revoked/secret', {});
      secrets.revoked = r.body.secret;
      return r.status;
    });
    await assert.rejects(device(b, 'revoked', { protocolVersion: 5, password: old }), (err: { code?: number }) => err.code === 0x87);
    await held({ code: 0x98, text: 'device deleted' }, async () => (await a.api('DELETE', '/api/devices/revoked')).status);
  });

  it("reads a message's trace through a node other than the one that handled it", async () => {
    const dev = await device(b, 'm7');
    await dev.publishAsync(`/${PRODUCT}/m7/properties/report`, JSON.stringify({ values: { t: 21.5 } }), { qos: 1 });
    const onB = await until(async () => {
      const items = (await b.api('GET', '/api/devices/m7/trace')).body.items as { id: string; spans: { stage: string }[] }[];
      return items.length === 1 && items[0]!.spans.some((s) => s.stage === 'store') ? items[0] : undefined;
    }, 'the trace on B, stored');
    assert.deepEqual((await a.api('GET', '/api/devices/m7/trace')).body.items, [onB], "A lists B's trace of the device");
    const one = await a.api('GET', `/api/trace/${onB.id}`);
    assert.equal(one.status, 200, JSON.stringify(one.body));
    assert.deepEqual(one.body, onB);
    const none = await cNode.api('GET', '/api/trace/0000000000000000');
    assert.equal(none.status, 404, 'a trace no node holds');
  });

  it('shows a device handled by node B on the live feed of node A', async () => {
    const events: { type: string; device_id?: string; status?: string; values?: Record<string, unknown> }[] = [];
    const ws = new WebSocket(`ws://127.0.0.1:${a.http}/api/ws?access_token=${TEST_TOKEN}&device=m8`);
    ws.on('message', (data) => events.push(JSON.parse(String(data))));
    try {
      await until(() => events.some((e) => e.type === 'hello'), 'the feed on A says hello');
      // B relays once it has read that A has a listener (runtime/cluster/feed-relay.ts)
      await until(async () => (await b.api('GET', '/api/health')).body.components?.cluster_feed?.others_listen === true, 'B knows A listens');
      const dev = await device(b, 'm8');
      await until(() => events.some((e) => e.type === 'status' && e.status === 'online'), "m8's going online on A's feed");
      await dev.publishAsync(`/${PRODUCT}/m8/properties/report`, JSON.stringify({ values: { t: 7.25 } }), { qos: 1 });
      const t = await until(() => events.find((e) => e.type === 'telemetry'), "m8's telemetry on A's feed");
      assert.equal(t.device_id, 'm8');
      assert.deepEqual(t.values, { t: 7.25 });
      assert.equal(events.filter((e) => e.type === 'telemetry').length, 1, 'once');
    } finally {
      ws.close();
    }
  });

  it("serves a GraphQL subscription on node A (its socket process on 2+ cores) with the telemetry of a device on C", async () => {
    const health = async () => (await a.api('GET', '/api/health')).body.components.graphql;
    const client = wsClient(`http://127.0.0.1:${a.http}`, { authorization: `Bearer ${TEST_TOKEN}` });
    try {
      const s = collect(client, 'subscription { telemetry(device_id: "m9") { device_id values } }');
      await until(async () => (await health()).subscriptions === 1, 'the subscription counted on A');
      assert.equal((await health()).sockets, os.availableParallelism() >= 2 ? 'process' : 'inline');
      await until(async () => (await cNode.api('GET', '/api/health')).body.components?.cluster_feed?.others_listen === true, 'C knows A listens');
      const dev = await device(cNode, 'm9');
      await dev.publishAsync(`/${PRODUCT}/m9/properties/report`, JSON.stringify({ values: { t: 3.5 } }), { qos: 1 });
      const [r] = await s.next(1, 20_000);
      assert.deepEqual(r.data.telemetry, { device_id: 'm9', values: { t: 3.5 } });
      s.stop();
    } finally {
      await client.dispose();
    }
  });

  it("tells the other nodes at once when a node's first feed listener arrives: a device on B publishing right after it is seen on A", async () => {
    const others = async (n: TestNode) => (await n.api('GET', '/api/health')).body.components?.cluster_feed?.others_listen;
    // nobody listens anywhere: the earlier tests' listeners are gone and B has read it
    await until(async () => (await others(b)) === false, 'B knows that nobody listens', 4 * 3_000);
    const events: { type: string; values?: Record<string, unknown> }[] = [];
    const ws = new WebSocket(`ws://127.0.0.1:${a.http}/api/ws?access_token=${TEST_TOKEN}&device=m10`);
    ws.on('message', (data) => events.push(JSON.parse(String(data))));
    try {
      await until(() => events.some((e) => e.type === 'hello'), 'the feed on A says hello');
      const heardAt = performance.now();
      // B reads the listener set once a second: knowing within 300 ms is the notice, not that read
      await until(async () => (await others(b)) === true, 'B knows that A listens', 2_000, 10);
      assert.ok(performance.now() - heardAt < 500, `B knew after ${Math.round(performance.now() - heardAt)} ms`);
      const dev = await device(b, 'm10');
      await dev.publishAsync(`/${PRODUCT}/m10/properties/report`, JSON.stringify({ values: { t: 1.5 } }), { qos: 1 });
      const t = await until(() => events.find((e) => e.type === 'telemetry'), "m10's telemetry on A's feed", 10_000);
      assert.deepEqual(t.values, { t: 1.5 });
    } finally {
      ws.close();
    }
  });

  it('sends at most one listening notice a second, however fast feed sockets open and close', async () => {
    const notices = async () => (await a.api('GET', '/api/health')).body.components?.cluster_feed?.notices as number;
    await new Promise((r) => setTimeout(r, 1_100)); // past the previous test's notice
    const before = await notices();
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${a.http}/api/ws?access_token=${TEST_TOKEN}`);
      await new Promise((ok, fail) => {
        ws.once('message', ok);
        ws.once('error', fail);
      });
      ws.close();
      await new Promise((ok) => ws.once('close', ok));
    }
    const sent = (await notices()) - before;
    const bound = Math.ceil((performance.now() - t0) / 1000) + 1;
    assert.ok(sent >= 1 && sent <= bound, `${sent} notices for 20 first listeners in ${Math.round(performance.now() - t0)} ms (at most ${bound})`);
  });

  it('marks the devices of a node killed with SIGKILL offline on the others within 2× the heartbeat, and drops the node from the list', async () => {
    await device(cNode, 'm1');
    await device(cNode, 'm2');
    await until(async () => (await status(a, 'm1')) === 'online' && (await status(a, 'm2')) === 'online', 'm1, m2 online');
    const killedAt = Date.now();
    cNode.child.kill('SIGKILL');
    await until(async () => (await status(a, 'm1')) === 'offline' && (await status(b, 'm2')) === 'offline', 'offline after the kill', 4 * HEARTBEAT_MS, 50);
    const took = Date.now() - killedAt;
    assert.ok(took <= 2 * HEARTBEAT_MS, `offline ${took} ms after the kill (heartbeat ${HEARTBEAT_MS} ms)`);
    await until(async () => !(await clusterOf(a)).nodes.some((n) => n.id === 'node-c'), 'node-c gone from the list', 2 * HEARTBEAT_MS);
  });

  it('lists a node that joins and forgets one that leaves, without restarting the others', async () => {
    const d = await c.add('node-d');
    // listed from its start on; polled, since a node the loaded test machine stalls past the short
    // test heartbeat while it starts is reaped and listed again at its next beat (runtime/cluster/node.ts)
    const ids = async (n: TestNode) => (await clusterOf(n)).nodes.map((x) => x.id).join();
    await until(async () => (await ids(a)) === 'node-a,node-b,node-d', 'node-d listed on A');
    const dev = await device(d, 'm3');
    const got = new Promise<string>((resolve) => dev.on('message', (_t, p) => resolve(JSON.parse(String(p)).command)));
    await dev.subscribeAsync(`/${PRODUCT}/m3/command`, { qos: 1 });
    assert.equal((await b.api('POST', '/api/devices/m3/commands', { command: 'hello-d' })).body.status, 'delivered');
    assert.equal(await got, 'hello-d');
    await dev.endAsync();
    assert.equal(await d.stop(), 0);
    assert.equal(await ids(b), 'node-a,node-b', 'a node that stops leaves the list at once');
  });
});
