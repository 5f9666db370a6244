/**
 * HTTP-FLV viewers are counted right when clients leave early: a client that gives up while an
 * on-demand stream is still starting must not be attached once it is live (it would count as a
 * viewer until the camera run ends, keep the camera running and fill the 100-viewer limit).
 */
import assert from 'node:assert/strict';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { startCamera, freePort, type Camera } from './camera.ts';
import { until } from './procs.ts';

describe('camera streams: HTTP-FLV clients that leave while the stream starts', function () {
  this.timeout(90_000);
  let flux: FluxProcess;
  let cam: Camera | undefined;

  before(async function () {
    flux = await startFlux({}, { timeoutMs: 60_000 });
  });

  after(async function () {
    await flux?.stop();
    await cam?.kill();
  });

  it('counts only the viewer still connected, and none once it leaves', async function () {
    const port = await freePort();
    const created = await flux.api('POST', '/api/streams', { id: 'lobby', url: `rtsp://127.0.0.1:${port}/test` });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const flv = `${flux.url}/api/streams/lobby/live.flv`;
    const auth = { authorization: `Bearer ${flux.token}` };

    // the camera is down: these wait for it, and give up before it comes
    const quitters = [1, 2, 3].map(() => {
      const ac = new AbortController();
      const done = fetch(flv, { headers: auth, signal: ac.signal }).catch(() => undefined);
      setTimeout(() => ac.abort(), 300);
      return done;
    });
    await Promise.all(quitters);

    cam = await startCamera({ port });
    const view = async () => (await flux.api('GET', '/api/streams/lobby')).body.state;
    await until('the stream is live', 30_000, async () => (await view()).status === 'live');
    // the clients that left are gone: nothing watches yet
    for (let i = 0; i < 5; i++) {
      assert.equal((await view()).viewers, 0, 'clients that left are not viewers');
      await new Promise((r) => setTimeout(r, 200));
    }

    const ac = new AbortController();
    const res = await fetch(flv, { headers: auth, signal: ac.signal });
    assert.equal(res.status, 200);
    const first = await res.body!.getReader().read();
    assert.ok(first.value && first.value.length > 0, 'the viewer gets FLV');
    assert.equal((await view()).viewers, 1, 'only the connected viewer counts');

    ac.abort();
    await until('no viewer left', 10_000, async () => (await flux.api('GET', '/api/streams/lobby')).body.state.viewers === 0);
  });
});
