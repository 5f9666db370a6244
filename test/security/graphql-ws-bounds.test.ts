/**
 * What one GraphQL WebSocket may make FLUX hold (docs/graphql.md "Slow clients"): one viewer's socket
 * took 20,000 subscriptions (a group each, +50 MB in the socket process), and a socket that sends
 * queries without reading had every answer wait in memory (3,000 introspection queries: +50 MB in
 * the socket process and +100 MB in FLUX). Now a connection has at most 100 operations at once, and
 * one whose unread answers pass the high-water mark is cut off (1013) at its next message.
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { waitFor } from '../rules/helpers.ts';

const INTROSPECTION = '{ __schema { types { name description fields { name description args { name description } } } } }';

describe('GraphQL WebSocket bounds per connection (real process)', function () {
  this.timeout(120_000);
  let flux: FluxProcess;
  const graphql = async () => (await flux.api('GET', '/api/health')).body.components?.graphql as { subscriptions: number; connections: number };

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
  });
  after(async () => {
    await flux?.stop();
  });

  const connect = async () => {
    const ws = new WebSocket(`${flux.url.replace(/^http/, 'ws')}/api/graphql`, 'graphql-transport-ws');
    const messages: any[] = [];
    ws.on('message', (d) => void messages.push(JSON.parse(String(d))));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${flux.token}` } }));
    await waitFor('connection_ack', () => messages.some((m) => m.type === 'connection_ack'));
    return { ws, messages };
  };

  it('refuses the 101st operation of a connection (too_many); the first 100 stay subscribed', async () => {
    const { ws, messages } = await connect();
    for (let i = 0; i < 105; i++) {
      ws.send(JSON.stringify({ id: `s${i}`, type: 'subscribe', payload: { query: 'subscription($m: [String!]) { telemetry(metrics: $m) { ts } }', variables: { m: [`m${i}`] } } }));
    }
    const refused = await waitFor('5 refusals', () => {
      const errors = messages.filter((m) => m.type === 'error');
      return errors.length >= 5 && errors;
    });
    assert.deepEqual(refused.map((m) => m.id), ['s100', 's101', 's102', 's103', 's104']);
    assert.equal(refused[0].payload[0].extensions.code, 'too_many');
    await waitFor('100 subscriptions', async () => (await graphql()).subscriptions === 100);
    ws.close();
    await waitFor('closed', async () => (await graphql()).connections === 0);
  });

  it('cuts off a connection that sends queries without reading the answers', async () => {
    const { ws } = await connect();
    // never read again: the answers can only wait in FLUX
    (ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const query = JSON.stringify({ type: 'subscribe', payload: { query: INTROSPECTION } });
    let sent = 0;
    // ~20 KB an answer: 60 MB of answers at most, far past the kernel's socket buffers and the 1 MiB mark
    while (sent < 3000 && (await graphql()).connections > 0) {
      for (let i = 0; i < 100; i++) ws.send(query.replace('{', `{"id":"q${sent++}",`));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await waitFor('the connection cut off', async () => (await graphql()).connections === 0, 10_000);
    assert.ok(sent < 3000, `cut off after ${sent} queries`);
    ws.terminate();
  });
});
