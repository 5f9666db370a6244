/**
 * Camera and push URLs are checked as ffmpeg will read them, not only as `new URL` parses them: the
 * WHATWG parser drops leading and trailing control characters, but the URL is stored and handed to
 * ffmpeg as sent, and ffmpeg takes a string that does not start with a scheme for a local file.
 */
import assert from 'node:assert/strict';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';

describe('camera streams: URLs with control characters', function () {
  this.timeout(60_000);
  let flux: FluxProcess;

  before(async function () {
    flux = await startFlux({}, { timeoutMs: 60_000 });
  });

  after(async function () {
    await flux?.stop();
  });

  const controls = ['\u0001', '\u0008', '\u001b', '\u001f', '\u007f'];

  it('refuses a camera URL with a control character (400), before or after the scheme', async function () {
    for (const c of controls) {
      for (const url of [`${c}rtsp://127.0.0.1:8554/x`, `rtsp://127.0.0.1:8554/x${c}`, `rtsp://127.0.0.1:8554/a${c}b`]) {
        const r = await flux.api('POST', '/api/streams', { url, on_demand: true });
        assert.equal(r.status, 400, `${JSON.stringify(url)}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.error.message, /RTSP URL/);
      }
    }
    const ok = await flux.api('POST', '/api/streams', { id: 'cam1', url: 'rtsp://127.0.0.1:8554/x' });
    assert.equal(ok.status, 201);
    const patched = await flux.api('PATCH', '/api/streams/cam1', { url: '\u0001rtsp://127.0.0.1:8554/x' });
    assert.equal(patched.status, 400);
  });

  it('refuses a push target with a control character (400)', async function () {
    for (const c of controls) {
      const r = await flux.api('POST', '/api/streams', { url: 'rtsp://127.0.0.1:8554/x', rtmp_push: [`${c}rtmp://127.0.0.1/live/key`] });
      assert.equal(r.status, 400, `${JSON.stringify(c)}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error.message, /RTMP URL/);
    }
  });
});
