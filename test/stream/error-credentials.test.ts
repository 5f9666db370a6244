/**
 * ffmpeg names its input as given, credentials included (`rtsp://user:pass@host/x: Input/output
 * error`); that line becomes a stream's `last_error` and a failed snapshot's message, which viewers
 * read. Credentials are never returned (docs/streams.md), so they are taken out of that text.
 */
import assert from 'node:assert/strict';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from './procs.ts';

describe('camera streams: ffmpeg errors carry no credentials', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  const secret = 'S3cret-Pa55';

  before(async function () {
    flux = await startFlux({}, { timeoutMs: 60_000 });
  });

  after(async function () {
    await flux?.stop();
  });

  it('shows the error of a camera that cannot be reached without its user and password (stream state, list, snapshot, log)', async function () {
    const url = `rtsp://admin:${secret}@nosuch.invalid:554/live`;
    const r = await flux.api('POST', '/api/streams', { id: 'gate', url, on_demand: false });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const err = await until('an error', 30_000, async () => (await flux.api('GET', '/api/streams/gate')).body.state.last_error as string | null);
    assert.match(err, /nosuch\.invalid/, 'the error still names the camera');
    const answers = [await flux.api('GET', '/api/streams/gate'), await flux.api('GET', '/api/streams'), await flux.api('GET', '/api/streams/gate/snapshot.jpg')];
    assert.equal(answers[2]!.status, 502);
    for (const a of answers) {
      const text = JSON.stringify(a.body);
      assert.ok(!text.includes(secret), `no password in ${text.slice(0, 300)}`);
      assert.ok(!text.includes('admin:'), `no user in ${text.slice(0, 300)}`);
    }
    assert.ok(!flux.output().includes(secret), 'no password in the log');
  });
});
