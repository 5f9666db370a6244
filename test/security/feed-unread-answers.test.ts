/**
 * A live feed client (/api/ws, any role) that sends `subscribe` messages without reading the answers:
 * every answer waited in FLUX's memory (60 MB sent grew RSS by 215 MB: a 60 KB filter of commas is
 * answered with ~190 KB). Now a client whose unread answers pass the high-water mark (1 MiB) is cut
 * off at its next message, as deliver() cuts off one that does not read events (runtime/feed).
 */
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { waitFor } from '../rules/helpers.ts';

describe('live feed client that does not read its answers (real process)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  const clients = async () => (await flux.api('GET', '/api/health')).body.components?.feed?.clients as number;

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
  });
  after(async () => {
    await flux?.stop();
  });

  it('is cut off once its answers pass the mark', async () => {
    const ws = new WebSocket(`${flux.url.replace(/^http/, 'ws')}/api/ws?access_token=${flux.token}`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    (ws as unknown as { _socket: { pause(): void } })._socket.pause();
    await waitFor('connected', async () => (await clients()) === 1);
    const message = JSON.stringify({ subscribe: { metric: ','.repeat(60_000) } });
    let sent = 0;
    // ~190 KB an answer: 100 MB of answers at most, far past the kernel's socket buffers and the mark
    while (sent < 500 && (await clients()) > 0) {
      for (let i = 0; i < 20; i++, sent++) ws.send(message);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await waitFor('the client cut off', async () => (await clients()) === 0, 10_000);
    assert.ok(sent < 500, `cut off after ${sent} messages`);
    ws.terminate();
  });
});
