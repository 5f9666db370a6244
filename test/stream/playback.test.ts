/**
 * Camera streams end to end with a real RTSP camera (GStreamer), real ffmpeg and real Chromium:
 * registry and API (credentials never returned, stored encrypted), HLS and HTTP-FLV playing in
 * the browser, snapshots, signed URLs, and no stream file readable without auth or by traversal.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { startCamera, type Camera } from './camera.ts';
import { launchBrowser, waitPlaying, jpegSize } from './browser.ts';

describe('camera streams: API, HLS and HTTP-FLV in Chromium, snapshots, auth', function () {
  this.timeout(90_000);
  let cam: Camera;
  let flux: FluxProcess;
  let browser: Browser;

  before(async function () {
    [cam, flux, browser] = await Promise.all([startCamera(), startFlux({}, { timeoutMs: 60_000 }), launchBrowser()]);
  });

  after(async function () {
    await browser?.close();
    await flux?.stop();
    await cam?.kill();
  });

  it('creates a stream; the API never returns the RTSP credentials and the database holds them only encrypted', async function () {
    const withCreds = cam.url.replace('rtsp://', 'rtsp://viewer:S3cret-Pa55@');
    const r = await flux.api('POST', '/api/streams', { id: 'gate', name: 'Gate camera', url: withCreds, tags: { site: 'north' } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.url, cam.url);
    assert.equal(r.body.has_credentials, true);
    assert.equal(r.body.on_demand, true);
    assert.equal(r.body.state.status, 'idle');
    for (const res of [r, await flux.api('GET', '/api/streams/gate'), await flux.api('GET', '/api/streams')]) {
      assert.ok(!JSON.stringify(res.body).includes('S3cret-Pa55'), 'no password in an answer');
      assert.ok(!JSON.stringify(res.body).includes('viewer:'), 'no user in an answer');
    }
    const db = fs.readFileSync(path.join(flux.dataDir, 'flux.db'));
    assert.equal(db.includes('S3cret-Pa55'), false, 'the password is not in the database file in clear');
    const key = fs.statSync(path.join(flux.dataDir, 'stream.key'));
    assert.equal(key.mode & 0o077, 0, 'the key file is readable by its owner only');
    assert.equal((await flux.api('POST', '/api/streams', { id: 'gate', url: cam.url })).status, 409);
    const bad = await flux.api('POST', '/api/streams', { id: 'x', url: 'http://example.com/a' });
    assert.equal(bad.status, 400);
    const badId = await flux.api('POST', '/api/streams', { id: '../etc', url: cam.url });
    assert.equal(badId.status, 400);
    assert.equal(badId.body.error.code, 'invalid_id');
    const p = await flux.api('PATCH', '/api/streams/gate', { url: cam.url });
    assert.equal(p.status, 200);
    assert.equal(p.body.has_credentials, false);
  });

  it('plays HLS in Chromium from a signed player URL (the video advances) and the snapshot is a JPEG of the camera size', async function () {
    const urls = await flux.api('GET', '/api/streams/gate/urls?ttl_s=300');
    assert.equal(urls.status, 200);
    const page = await browser.newPage();
    try {
      await page.goto(flux.url + urls.body.player);
      const st = await waitPlaying(page, 2, 60_000, 0);
      assert.equal(st.mode, 'hls');
      assert.ok(st.firstFrameMs !== null);
    } finally {
      await page.close();
    }
    const snap = await fetch(flux.url + urls.body.snapshot);
    assert.equal(snap.status, 200);
    assert.equal(snap.headers.get('content-type'), 'image/jpeg');
    assert.deepEqual(jpegSize(Buffer.from(await snap.arrayBuffer())), { width: 640, height: 360 });
  });

  it('plays HTTP-FLV in Chromium with mpegts.js (the video advances)', async function () {
    const urls = await flux.api('GET', '/api/streams/gate/urls');
    const page = await browser.newPage();
    try {
      await page.goto(`${flux.url}${urls.body.player}&mode=flv`);
      const st = await waitPlaying(page, 2, 60_000, 0);
      assert.equal(st.mode, 'flv');
      const s = await flux.api('GET', '/api/streams/gate');
      assert.equal(s.body.state.status, 'live');
      assert.equal(s.body.state.viewers, 1, 'the FLV viewer is counted');
    } finally {
      await page.close();
    }
  });

  it('takes a one-shot snapshot of a stream that is not running', async function () {
    const r = await flux.api('POST', '/api/streams', { id: 'oneshot', url: cam.url });
    assert.equal(r.status, 201);
    const snap = await fetch(`${flux.url}/api/streams/oneshot/snapshot.jpg`, { headers: { authorization: `Bearer ${flux.token}` } });
    assert.equal(snap.status, 200);
    assert.deepEqual(jpegSize(Buffer.from(await snap.arrayBuffer())), { width: 640, height: 360 });
    assert.equal((await flux.api('GET', '/api/streams/oneshot')).body.state.status, 'idle', 'a snapshot alone does not start the stream');
  });

  it('serves no stream file without auth, with a wrong, foreign or expired signature, or through traversal', async function () {
    // the stream is live: its files exist
    const pl = await flux.api('GET', '/api/streams/gate/hls/index.m3u8');
    assert.equal(pl.status, 200);
    const seg = /^(s\d+\.ts)$/m.exec(String(pl.body))![1];
    const other = await flux.api('GET', '/api/streams/oneshot/urls');
    const foreignSig = new URL(flux.url + other.body.hls).searchParams.get('sig')!;
    const own = await flux.api('GET', '/api/streams/gate/urls');
    const sig = new URL(flux.url + own.body.hls).searchParams.get('sig')!;
    const [exp, mac] = sig.split('.');
    const forged = `${Number(exp) + 3600}.${mac}`;
    const expired = `${Math.floor(Date.now() / 1000) - 10}.${mac}`;
    const paths = ['/hls/index.m3u8', `/hls/${seg}`, '/live.flv', '/snapshot.jpg', '/player', '/recordings?from=0'];
    for (const p of paths) {
      const base = `${flux.url}/api/streams/gate${p}`;
      const join = p.includes('?') ? '&' : '?';
      for (const [what, url] of [
        ['no auth', base],
        ['foreign sig', `${base}${join}sig=${encodeURIComponent(foreignSig)}`],
        ['forged expiry', `${base}${join}sig=${encodeURIComponent(forged)}`],
        ['expired', `${base}${join}sig=${encodeURIComponent(expired)}`],
        ['garbage', `${base}${join}sig=x`],
      ]) {
        const res = await fetch(url!, { signal: AbortSignal.timeout(10_000) });
        assert.equal(res.status, 401, `${what} ${p} → ${res.status}`);
        await res.body?.cancel();
      }
    }
    // with the right signature a current segment is readable (the one above may have rotated out)
    const fresh = /^(s\d+\.ts)/m.exec(String((await flux.api('GET', '/api/streams/gate/hls/index.m3u8')).body))![1];
    const ok = await fetch(`${flux.url}/api/streams/gate/hls/${fresh}?sig=${encodeURIComponent(sig)}`);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
    const auth = { authorization: `Bearer ${flux.token}` };
    const traversal = [
      '/api/streams/gate/hls/..%2F..%2F..%2Fstream.key',
      '/api/streams/gate/hls/%2e%2e%2f%2e%2e%2f%2e%2e%2fflux.db',
      '/api/streams/gate/hls/..%5C..%5Cstream.key',
      '/api/streams/gate/rec/..%2F..%2F..%2Fstream.key',
      '/api/streams/gate/rec/1234567890.ts%00.key',
      '/api/streams/..%2F..%2F/hls/index.m3u8',
      '/api/streams/%2e%2e/hls/index.m3u8',
      '/api/streams/.pids/hls/index.m3u8',
      '/api/streams/_player/..%2F..%2Fpackage.json',
      '/api/streams/_player/%2e%2e%2fhls.min.js',
    ];
    for (const p of traversal) {
      const res = await fetch(flux.url + p, { headers: auth, signal: AbortSignal.timeout(10_000) });
      const body = await res.text();
      assert.ok(res.status === 400 || res.status === 404, `${p} → ${res.status}`);
      assert.match(body, /"error"/, `${p} answers an API error`);
      assert.ok(!body.includes('"name": "flux-iot"') && !body.includes('SQLite format'), `${p} leaks no file`);
    }
    // the player libraries are public, from FLUX itself
    const lib = await fetch(`${flux.url}/api/streams/_player/hls.min.js`);
    assert.equal(lib.status, 200);
    assert.ok((await lib.text()).length > 100_000);
  });
});
