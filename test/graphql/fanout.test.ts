/**
 * GraphQL subscriptions fanned out by group (runtime/graphql/hub.ts, subscriptions.ts): through real
 * graphql-ws clients (and one raw graphql-transport-ws client that stops reading) against in-process
 * FLUX over real WebSockets, fed by the real live feed. Also the hub alone, counting executions.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { execute, parse } from 'graphql';
import { createHub, loadGraphqlEngine, type Member } from '../../runtime/graphql/index.ts';
import type { FeedEvent } from '../../runtime/feed/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';
import { waitFor } from '../rules/helpers.ts';
import { collect } from './helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const { compileSubscription, subscriptionSchema } = await loadGraphqlEngine();

// Both places the sockets can live (FLUX_GRAPHQL_SOCKETS; docs/graphql.md "Where the sockets live").
for (const sockets of ['inline', 'process'] as const) describe(`GraphQL subscription groups (in-process FLUX, graphql-ws clients, sockets ${sockets})`, function () {
  this.timeout(60_000);
  let flux: Flux;
  let base: string;
  const clients: Client[] = [];
  const client = (token = TEST_TOKEN, onClosed?: (code: number, reason: string) => void) => {
    const c = createClient({ url: `${base.replace(/^http/, 'ws')}/api/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0, lazy: false, onNonLazyError: () => undefined, on: { closed: (e) => onClosed?.((e as { code: number }).code, String((e as { reason: string }).reason)) } });
    clients.push(c);
    return c;
  };
  const health = async () => ((await (await fetch(`${base}/api/health`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).json()) as { components: { graphql: Record<string, number> } }).components.graphql;
  const telemetry = (device: string, values: Record<string, unknown>, ts = Date.now()): FeedEvent => ({ type: 'telemetry', device_id: device, product_key: 'meter', ts, values, msg_id: `m${ts}` });

  before(async () => {
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN });
    flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false, graphql: { sockets, highWaterBytes: 256 * 1024, slowCloseMs: 400, slowCutOffMs: 60_000 } });
    base = `http://127.0.0.1:${(await flux.start()).http}`;
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.dispose()));
    await waitFor('subscriptions closed', async () => (await health()).subscriptions === 0);
  });
  after(async () => {
    await flux?.stop();
  });

  it('equal document and variables share one group; each client gets the result under its own id', async () => {
    const doc = 'subscription Watch($d: ID!) { telemetry(device_id: $d) { device_id v: values ts __typename } }';
    const a = collect(client(), doc, { d: 'd1' });
    const b = collect(client(), doc, { d: 'd1' });
    const other = collect(client(), doc, { d: 'd2' });
    await waitFor('3 subscriptions', async () => (await health()).subscriptions === 3);
    assert.equal((await health()).groups, 2, 'two variable values: two groups');
    const ts = Date.now();
    flux.modules.feed.publish(telemetry('d1', { t: 21.5 }, ts));
    flux.modules.feed.publish(telemetry('d3', { t: 99 }, ts));
    const expected = { device_id: 'd1', v: { t: 21.5 }, ts, __typename: 'TelemetryUpdate' };
    assert.deepEqual((await a.next(1))[0].data.telemetry, expected);
    assert.deepEqual((await b.next(1))[0].data.telemetry, expected);
    flux.modules.feed.publish(telemetry('d2', { t: 1 }, ts + 1));
    assert.deepEqual((await other.next(1))[0].data.telemetry.v, { t: 1 });
    await sleep(100);
    assert.equal(a.got.length, 1, 'd2 and d3 are not d1');
    assert.equal(other.got.length, 1);
    // one client leaves: the group stays for the other
    b.stop();
    await waitFor('2 subscriptions', async () => (await health()).subscriptions === 2);
    assert.equal((await health()).groups, 2);
    flux.modules.feed.publish(telemetry('d1', { t: 22 }, ts + 2));
    assert.deepEqual((await a.next(2))[1].data.telemetry.v, { t: 22 });
  });

  it('filters by product and metric per group, with several operations in a document and fragments', async () => {
    const doc = `
      fragment T on TelemetryUpdate { device_id values }
      subscription Other { status { device_id } }
      subscription Hot($m: [String!]) { telemetry(product_key: "meter", metrics: $m) { ...T } }`;
    const c = client();
    const ambiguous = await new Promise<unknown>((resolve) => c.subscribe({ query: doc, variables: { m: ['t'] } }, { next: () => undefined, error: resolve, complete: () => resolve(null) }));
    assert.match(JSON.stringify(ambiguous), /operation/i, 'two operations and no operationName: refused');
    const list: any[] = [];
    c.subscribe({ query: doc, operationName: 'Hot', variables: { m: ['t'] } }, { next: (v) => list.push(v), error: (e) => assert.fail(JSON.stringify(e)), complete: () => undefined });
    await waitFor('subscribed', async () => (await health()).subscriptions === 1);
    flux.modules.feed.publish(telemetry('d1', { h: 50 }));
    flux.modules.feed.publish(telemetry('d9', { t: 5, h: 50 }));
    flux.modules.feed.publish({ ...telemetry('x1', { t: 7 }), product_key: 'other' });
    await waitFor('a result', async () => list.length >= 1);
    assert.deepEqual(list[0].data, { telemetry: { device_id: 'd9', values: { t: 5 } } });
    await sleep(100);
    assert.equal(list.length, 1, 'h alone and another product do not match');
  });

  it('answers queries over the same WebSocket through the normal execution (not the groups)', async () => {
    const c = client();
    const r = await new Promise<any>((resolve, reject) => c.subscribe({ query: '{ plugins { id } devices(limit: 1) { page { total } } }' }, { next: resolve, error: reject, complete: () => undefined }));
    assert.deepEqual(r.data.devices.page, { total: 0 });
    assert.ok(Array.isArray(r.data.plugins));
    // over HTTP (server-sent events) a subscription is refused with a reason
    const sse = await fetch(`${base}/api/graphql`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ query: 'subscription { status { device_id } }' }) });
    assert.match(await sse.text(), /served over WebSocket/);
  });

  it('drops results for a client that stops reading, closes it with 1013 after slowCloseMs, and never slows the others', async () => {
    const fast = collect(client(), 'subscription { telemetry(device_id: "big") { ts values } }');
    // A raw graphql-transport-ws client whose socket stops reading after it subscribed.
    const raw = new WebSocket(`${base.replace(/^http/, 'ws')}/api/graphql`, 'graphql-transport-ws');
    const closed = new Promise<{ code: number; reason: string }>((resolve) => raw.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
    await new Promise<void>((resolve) => raw.on('open', () => resolve()));
    raw.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${TEST_TOKEN}` } }));
    await new Promise<void>((resolve) => raw.once('message', () => resolve()));
    raw.send(JSON.stringify({ id: 's1', type: 'subscribe', payload: { query: 'subscription { telemetry(device_id: "big") { ts values } }' } }));
    await waitFor('2 subscriptions in one group', async () => {
      const h = await health();
      return h.subscriptions === 2 && h.groups === 1;
    });
    (raw as unknown as { _socket: { pause(): void } })._socket.pause();
    const dropped0 = (await health()).dropped;
    const blob = 'x'.repeat(64 * 1024);
    const n = 400; // 25 MiB: far more than the loopback socket buffers and the 256 KiB high-water mark
    // Two at a time, each pair read by the other client before the next: it never falls behind (however busy the machine is).
    for (let i = 0; i < n; i += 2) {
      flux.modules.feed.publish(telemetry('big', { i, blob }));
      flux.modules.feed.publish(telemetry('big', { i: i + 1, blob }));
      await fast.next(i + 2, 30_000);
    }
    assert.deepEqual(fast.got.map((r) => r.data.telemetry.values.i), Array.from({ length: n }, (_, i) => i), 'the reading client got every result, in order');
    const h = await health();
    // how many depends on how much the kernel buffers for the stalled socket (35–46 of 400 on a loaded machine, over 100 on a quiet one)
    assert.ok(h.dropped - dropped0 > 0, `results dropped for the stalled client: ${h.dropped - dropped0}`);
    // still behind past slowCloseMs: the next result closes it (slowCutOffMs 60 s: on a busy machine the client may need
    // more than the default 2 s to read the megabytes queued before the close frame, and would see 1006)
    await sleep(500);
    flux.modules.feed.publish(telemetry('big', { i: -1 }));
    (raw as unknown as { _socket: { resume(): void } })._socket.resume();
    const c = await closed;
    assert.equal(c.code, 1013, `closed with ${c.code} ${c.reason}`);
    assert.match(c.reason, /too slow/);
    await waitFor('the stalled subscription left its group', async () => (await health()).subscriptions === 1);
  });

  it('closes a connection (4401) when its token is revoked, and refuses one without a token (4403)', async () => {
    const made = await fetch(`${base}/api/users`, { method: 'POST', headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ username: 'watcher', password: 'watcher-password', role: 'viewer' }) });
    assert.equal(made.status, 201);
    const login = (await (await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'watcher', password: 'watcher-password' }) })).json()) as { token: string };
    let closedWith: number | undefined;
    const s = collect(client(login.token, (code) => (closedWith = code)), 'subscription { status { device_id status } }');
    await waitFor('subscribed', async () => (await health()).subscriptions === 1);
    flux.modules.feed.publish({ type: 'status', device_id: 'd1', product_key: 'meter', ts: Date.now(), status: 'online' });
    assert.deepEqual((await s.next(1))[0].data.status, { device_id: 'd1', status: 'online' });
    const del = await fetch(`${base}/api/users/watcher`, { method: 'DELETE', headers: { authorization: `Bearer ${TEST_TOKEN}` } });
    assert.equal(del.status, 204);
    await waitFor('closed 4401', async () => closedWith === 4401);
    let anonymous: number | undefined;
    collect(client('not-a-token', (code) => (anonymous = code)), 'subscription { status { device_id } }');
    await waitFor('closed 4403', async () => anonymous === 4403);
  });
});

describe('GraphQL subscription hub (one execution per event per group)', () => {
  it('renders an event once per group, visits only the groups of its device or product, and sends one frame per member', () => {
    let listener: ((ev: FeedEvent) => void) | undefined;
    const hub = createHub({ listen: (l) => ((listener = l), () => (listener = undefined)) }, { onRenderError: (err) => assert.fail(String(err)) });
    const frames: string[] = [];
    const member = (id: string): Member => ({ outlet: { deliver: (prefix: string, json: string) => (frames.push(prefix + json + '}'), true) } as never, prefix: `{"id":"${id}","type":"next","payload":` });
    const renders: string[] = [];
    const render = (name: string) => () => (payload: unknown) => (renders.push(name), JSON.stringify({ data: { p: payload } }));
    const handles = [
      hub.subscribe({ topic: 'telemetry', filter: { device_id: 'd1' }, key: 'A', render: render('A'), member: member('1') }),
      hub.subscribe({ topic: 'telemetry', filter: { device_id: 'd1' }, key: 'A', render: render('A'), member: member('2') }),
      hub.subscribe({ topic: 'telemetry', filter: { product_key: 'p' }, key: 'B', render: render('B'), member: member('3') }),
      hub.subscribe({ topic: 'telemetry', filter: { device_id: 'd2', product_key: 'q' }, key: 'C', render: render('C'), member: member('4') }),
      hub.subscribe({ topic: 'status', filter: {}, key: 'D', render: render('D'), member: member('5') }),
    ];
    assert.deepEqual({ ...hub.stats(), delivered: 0 }, { subscriptions: 5, groups: 4, delivered: 0, dropped: 0, failed: 0 });
    listener!({ type: 'telemetry', device_id: 'd1', product_key: 'p', ts: 1, values: { t: 1 } });
    assert.deepEqual(renders, ['A', 'B'], 'group A once for its two members, B by product');
    assert.equal(frames.length, 3);
    assert.equal(frames[0], '{"id":"1","type":"next","payload":{"data":{"p":{"device_id":"d1","product_key":"p","ts":1,"values":{"t":1},"msg_id":null}}}}');
    assert.equal(frames[1]!.slice(frames[1]!.indexOf('"payload"')), frames[0]!.slice(frames[0]!.indexOf('"payload"')), 'the same JSON for both members');
    renders.length = 0;
    listener!({ type: 'telemetry', device_id: 'd2', product_key: 'p', ts: 2, values: {} });
    assert.deepEqual(renders, ['B'], "C wants product q: filtered before it renders; A is another device's");
    renders.length = 0;
    listener!({ type: 'telemetry', device_id: 'd7', product_key: 'z', ts: 3, values: {} });
    assert.deepEqual(renders, [], 'no group of d7 or z');
    for (const h of handles) void h.return!();
    assert.equal(hub.stats().groups, 0);
    assert.equal(listener, undefined, 'no feed listener without subscriptions');
  });
});

describe('GraphQL subscription projection (compiled) against graphql-js execute', () => {
  const schema = subscriptionSchema(createHub({ listen: () => () => undefined }, { onRenderError: () => undefined }));
  const passThrough = (f: { resolve?: unknown }) => f.resolve === schema.getSubscriptionType()!.getFields().telemetry!.resolve;
  const alarm = { id: 'a1', rule_id: null, device_id: 'd1', level: 'critical', state: 'active', message: 'hot', count: 2, first_at: '2026-11-30T10:00:00.000Z', last_at: '2026-11-30T10:01:00.000Z', acked_at: null, cleared_at: null };
  const cases: [doc: string, payloads: unknown[]][] = [
    ['subscription { telemetry { device_id product_key ts values msg_id __typename } }', [
      { device_id: 'd1', product_key: 'p', ts: 1, values: { t: 1.5, s: 'x', b: true, n: null }, msg_id: 'm' },
      { device_id: 7, product_key: null, ts: '12', values: {}, msg_id: undefined },
      { device_id: 'd1', ts: 1, values: { t: 1 } },
      { product_key: 'p', ts: 1, values: {} }, // device_id missing: non-null, graphql-js answers an error
      { device_id: 'd1', ts: 'soon', values: {} }, // Float refuses it
    ]],
    ['subscription W($d: ID) { t: telemetry(device_id: $d) { when: ts v: values d: device_id } }', [{ device_id: 'd1', ts: 3, values: { a: [1, 2] } }]],
    ['subscription { status { device_id status reason __typename } }', [
      { device_id: 'd1', status: 'online', reason: null },
      { device_id: 'd1', status: 'sleeping', reason: 'x' }, // not a DeviceStatus
    ]],
    ['subscription { alarms { event ts alarm { id level state message count first_at acked_at } } }', [
      { event: 'raised', ts: 5, alarm },
      { event: 'raised', ts: 5, alarm: { ...alarm, level: 'catastrophic' } },
      { event: 'raised', ts: 5, alarm: { ...alarm, count: 2.5 } }, // Int refuses it
      { event: 'raised', ts: 5, alarm: null },
    ]],
    ['subscription { events { device_id event_id payload flagged problem msg_id ts } }', [{ device_id: 'd', event_id: 'door', payload: { open: true }, flagged: false, problem: null, msg_id: 'm', ts: 9 }]],
  ];

  it('gives the JSON graphql-js gives, or leaves the payload to it', () => {
    let compiled = 0;
    for (const [doc, payloads] of cases) {
      const document = parse(doc);
      const fast = compileSubscription(schema, document, null, passThrough);
      assert.ok(fast, `compiled: ${doc}`);
      for (const payload of payloads) {
        const expected = JSON.stringify(execute({ schema, document, rootValue: payload, variableValues: { d: 'd1' } }));
        const got = fast(payload);
        if (got === null) {
          assert.match(expected, /"errors"/, `only a payload graphql-js answers with errors is left to it: ${JSON.stringify(payload)}`);
          continue;
        }
        compiled++;
        assert.equal(got, expected, `${doc} with ${JSON.stringify(payload)}`);
      }
    }
    assert.equal(compiled, 7, 'every payload without an error was projected');
  });

  it('leaves documents with fragments, directives or lists to graphql-js', () => {
    for (const doc of [
      'fragment F on TelemetryUpdate { ts } subscription { telemetry { ...F } }',
      'subscription { telemetry { ... on TelemetryUpdate { ts } } }',
      'subscription($x: Boolean!) { telemetry { ts @include(if: $x) } }',
      'subscription { telemetry { ts ts } }',
    ]) assert.equal(compileSubscription(schema, parse(doc), null, passThrough), null, doc);
  });
});

describe('GraphQL sockets by default (FLUX_GRAPHQL_SOCKETS=auto)', () => {
  it('serves them in their own process on 2 cores or more, on the main thread of a single core', async () => {
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN });
    assert.equal(settings.graphqlSockets, 'auto');
    const flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
    try {
      const base = `http://127.0.0.1:${(await flux.start()).http}`;
      const h = (await (await fetch(`${base}/api/health`, { headers: { authorization: `Bearer ${TEST_TOKEN}` } })).json()) as { components: { graphql: { sockets: string } } };
      assert.equal(h.components.graphql.sockets, os.availableParallelism() >= 2 ? 'process' : 'inline');
    } finally {
      await flux.stop();
    }
  });
});
