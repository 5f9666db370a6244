/** The WebSocket live feed with a real `ws` client: token auth, filters, and a slow client that cannot slow the publisher. */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import type { Feed } from '../../runtime/feed/index.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';

function open(url: string, headers: Record<string, string> = {}): Promise<{ ws: WebSocket; messages: any[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const messages: any[] = [];
    ws.on('message', (d) => messages.push(JSON.parse(String(d))));
    ws.once('open', () => resolve({ ws, messages }));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('live feed at /api/ws', function () {
  let flux: Flux;
  let wsUrl: string;
  let feed: Feed;

  before(async function () {
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN });
    flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
    const ports = await flux.start();
    wsUrl = `ws://127.0.0.1:${ports.http}/api/ws`;
    feed = flux.modules.feed;
  });

  after(async function () {
    await flux?.stop();
  });

  it('refuses a connection without the token with 401', async function () {
    await assert.rejects(open(wsUrl), (err: { status?: number }) => err.status === 401);
    await assert.rejects(open(`${wsUrl}?access_token=wrong-token-123456`), (err: { status?: number }) => err.status === 401);
  });

  it('delivers events that match the filter given in the URL and nothing else', async function () {
    const { ws, messages } = await open(`${wsUrl}?events=telemetry&device=sensor_1&metric=temperature`, { authorization: `Bearer ${TEST_TOKEN}` });
    await until(() => messages.some((m) => m.type === 'hello'));
    feed.publish({ type: 'telemetry', device_id: 'sensor_2', product_key: 'p', ts: 1, values: { temperature: 1 } });
    feed.publish({ type: 'status', device_id: 'sensor_1', product_key: 'p', ts: 2, status: 'online' });
    feed.publish({ type: 'telemetry', device_id: 'sensor_1', product_key: 'p', ts: 3, values: { humidity: 50 } });
    feed.publish({ type: 'telemetry', device_id: 'sensor_1', product_key: 'p', ts: 4, values: { temperature: 45.3, humidity: 50 } });
    await until(() => messages.some((m) => m.type === 'telemetry'));
    await new Promise((r) => setTimeout(r, 50));
    const events = messages.filter((m) => m.type !== 'hello');
    assert.deepEqual(events, [{ type: 'telemetry', device_id: 'sensor_1', product_key: 'p', ts: 4, values: { temperature: 45.3 } }]);
    ws.close();
  });

  it('changes the filter on a subscribe message and answers a bad one with an error event', async function () {
    const { ws, messages } = await open(`${wsUrl}?access_token=${TEST_TOKEN}`);
    ws.send(JSON.stringify({ subscribe: { events: ['status'], product: 'p' } }));
    await until(() => messages.some((m) => m.type === 'subscribed'));
    feed.publish({ type: 'telemetry', device_id: 'd', product_key: 'p', ts: 1, values: { a: 1 } });
    feed.publish({ type: 'status', device_id: 'd', product_key: 'other', ts: 2, status: 'online' });
    feed.publish({ type: 'status', device_id: 'd', product_key: 'p', ts: 3, status: 'offline' });
    await until(() => messages.some((m) => m.type === 'status'));
    assert.deepEqual(messages.filter((m) => m.type === 'status').map((m) => m.ts), [3]);
    ws.send('not json');
    await until(() => messages.some((m) => m.type === 'error'));
    assert.equal(messages.find((m) => m.type === 'error').error.code, 'bad_request');
    ws.close();
  });

  it('forwards device status events from the device bus', async function () {
    const { ws, messages } = await open(`${wsUrl}?access_token=${TEST_TOKEN}&events=status`);
    await until(() => messages.some((m) => m.type === 'hello'));
    flux.ctx.bus.emit('status', { deviceId: 'sensor_7', productId: 'x', productKey: 'p', status: 'online', ts: 42, transport: 'mqtt' });
    await until(() => messages.some((m) => m.type === 'status'));
    assert.equal(messages.find((m) => m.type === 'status').device_id, 'sensor_7');
    ws.close();
  });

  it('drops events for a client that does not read, without slowing the publisher, and tells it how many it missed', async function () {
    const slow = await open(`${wsUrl}?access_token=${TEST_TOKEN}&events=telemetry`);
    const fast = await open(`${wsUrl}?access_token=${TEST_TOKEN}&events=telemetry`);
    await until(() => slow.messages.length > 0 && fast.messages.length > 0);
    // Stop reading on the slow client's socket: the server-side buffer fills and stays full.
    (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const big = 'x'.repeat(2 * 1024);
    const N = 5000;
    let publishMs = 0;
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      feed.publish({ type: 'telemetry', device_id: 'd', product_key: 'p', ts: i, values: { blob: big } });
      publishMs += performance.now() - t0;
      // Yield now and then so the reading client's socket drains, as it would between uplinks.
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
    await until(() => fast.messages.filter((m) => m.type === 'telemetry').length === N, 10_000);
    const before = slow.messages.filter((m) => m.type === 'telemetry').length;
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    // Once the slow client drains, events reach it again, preceded by a count of what it missed.
    let published = N;
    let marker = 0;
    await until(() => {
      feed.publish({ type: 'telemetry', device_id: 'd', product_key: 'p', ts: -1, values: { tick: ++marker } });
      published++;
      return slow.messages.some((m) => m.type === 'dropped');
    }, 15_000);
    const last = { done: true };
    feed.publish({ type: 'telemetry', device_id: 'd', product_key: 'p', ts: -2, values: last });
    published++;
    await until(() => slow.messages.some((m) => m.values?.done), 10_000);
    const got = slow.messages.filter((m) => m.type === 'telemetry').length;
    const missed = slow.messages.filter((m) => m.type === 'dropped').reduce((n, m) => n + m.count, 0);
    assert.ok(missed > 0, 'the slow client is told it missed events');
    assert.equal(got + missed, published, 'every event was either delivered or counted as dropped');
    assert.ok(before < N, 'the slow client did not receive everything while it was not reading');
    assert.ok(publishMs < 5000, `publishing is not held up by the slow client (${publishMs.toFixed(0)} ms for ${N})`);
    slow.ws.close();
    fast.ws.close();
  });
});
