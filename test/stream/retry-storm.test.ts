/**
 * The port probe (runtime/stream/runner.ts) ends the backoff only when a camera that refused
 * connections opens its port again. A camera whose port stays open while ffmpeg reports a refused
 * connection (an RTSP answer naming one, a redirect to a closed port) keeps its backoff instead of
 * being retried every probe period.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';

/** An RTSP server that answers every request with `status`; counts the RTSP sessions (not bare probes). */
async function refusingCamera(status: string): Promise<{ port: number; sessions: () => number; close(): Promise<void> }> {
  let sessions = 0;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let buf = '';
    let counted = false;
    s.on('data', (d) => {
      if (!counted) {
        counted = true;
        sessions++;
      }
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i >= 0; i = buf.indexOf('\r\n\r\n')) {
        const cseq = /CSeq:\s*(\d+)/i.exec(buf.slice(0, i))?.[1] ?? '1';
        buf = buf.slice(i + 4);
        s.write(`RTSP/1.0 ${status}\r\nCSeq: ${cseq}\r\n\r\n`);
      }
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    sessions: () => sessions,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

describe('camera streams: no retry storm from a camera whose port stays open', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let cam: Awaited<ReturnType<typeof refusingCamera>>;

  before(async function () {
    [flux, cam] = await Promise.all([startFlux({}, { timeoutMs: 60_000 }), refusingCamera('500 Connection refused')]);
  });

  after(async function () {
    await flux?.stop();
    await cam?.close();
  });

  it('keeps the backoff (1 s, 2 s, 4 s …) when ffmpeg says "Connection refused" but the port is open', async function () {
    const r = await flux.api('POST', '/api/streams', { id: 'door', url: `rtsp://127.0.0.1:${cam.port}/x`, on_demand: false });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    await new Promise((res) => setTimeout(res, 10_000));
    const st = (await flux.api('GET', '/api/streams/door')).body.state;
    assert.match(String(st.last_error), /refused/);
    // with the backoff: runs at about 0 s, 1 s, 3 s and 7 s; retried at every probe (0.5 s) it made 7 to 10 in 8 s
    assert.ok(cam.sessions() <= 5, `${cam.sessions()} ffmpeg sessions in 10 s (restarts ${st.restarts}, backoff ${st.backoff_ms} ms)`);
  });
});
