/**
 * GraphQL WebSockets authenticate in `connection_init`, after the upgrade, and graphql-ws waits 3 s
 * for it: one client that upgraded without ever authenticating, again as each socket was closed,
 * held all 5,000 connections, and every other client's upgrade got 503 (seen with a real FLUX).
 * Now one client address (IPv6: its /64) has at most 500 sockets waiting to authenticate (429 past it).
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import WebSocket from 'ws';
import { waitFor } from '../rules/helpers.ts';

describe('GraphQL WebSockets that never authenticate (real process)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  const sockets: net.Socket[] = [];

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await flux?.stop();
  });

  /** an upgrade that never sends connection_init: resolves with the status line */
  const upgrade = () =>
    new Promise<string>((resolve) => {
      const s = net.connect(Number(new URL(flux.url).port), '127.0.0.1');
      sockets.push(s);
      s.on('error', () => resolve('error'));
      s.once('data', (d) => resolve(String(d).split('\r\n')[0]!));
      s.write(`GET /api/graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });

  it('refuses the 501st unauthenticated socket of an address with 429; an authenticated client still connects', async () => {
    const first = await upgrade(); // starts the socket process
    const rest = await Promise.all(Array.from({ length: 549 }, upgrade));
    const all = [first, ...rest];
    assert.equal(all.filter((l) => l.startsWith('HTTP/1.1 101')).length, 500, JSON.stringify([...new Set(all)]));
    assert.equal(all.filter((l) => l.startsWith('HTTP/1.1 429')).length, 50);
    // the 500 still wait (graphql-ws gives them 3 s); a client of another address is served meanwhile
    const ws = new WebSocket(`${flux.url.replace(/^http/, 'ws')}/api/graphql`, 'graphql-transport-ws', { localAddress: '127.0.0.2' });
    const messages: { type: string }[] = [];
    ws.on('message', (d) => void messages.push(JSON.parse(String(d))));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${flux.token}` } }));
    await waitFor('connection_ack', () => messages.some((m) => m.type === 'connection_ack'));
    ws.close();
  });
});
