/**
 * What a running camera feeds besides viewers, with the real camera, ffmpeg and Chromium: RTMP push
 * to a local ffmpeg receiver (its own status and retry), recordings played back as HLS VOD, the
 * retention and size bounds, and the `flux stream` node through the alarm → snapshot → webhook example.
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { startFlux, tempDir, ROOT, type FluxProcess } from '../helpers/flux-process.ts';
import { startCamera, freePort, type Camera } from './camera.ts';
import { launchBrowser, waitPlaying, jpegSize } from './browser.ts';
import { until } from './procs.ts';
import { sweep, vodPlaylist, listSegments } from '../../runtime/stream/recording.ts';

describe('camera streams: RTMP push, recordings, the flux stream node', function () {
  this.timeout(120_000);
  let cam: Camera;
  let flux: FluxProcess;
  let browser: Browser;
  const work = tempDir('flux-stream-out-');

  before(async function () {
    [cam, flux, browser] = await Promise.all([startCamera(), startFlux({ FLUX_STREAM_RECORD_SEGMENT_S: '2' }, { timeoutMs: 60_000 }), launchBrowser()]);
  });

  after(async function () {
    await browser?.close();
    await flux?.stop();
    await cam?.kill();
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('pushes to an RTMP receiver with its own status and retry: retrying while it is down, live once it listens', async function () {
    const port = await freePort();
    const target = `rtmp://127.0.0.1:${port}/live/x`;
    const r = await flux.api('POST', '/api/streams', { id: 'push', url: cam.url, rtmp_push: [target] });
    assert.equal(r.status, 201);
    assert.deepEqual(r.body.rtmp_push, [`rtmp://127.0.0.1:${port}/live/***`], 'the stream key is masked');
    const push = async () => (await flux.api('GET', '/api/streams/push')).body.state.pushes[0];
    const down = await until('push retrying', 30_000, async () => ((await push())?.status === 'retrying' ? push() : undefined));
    assert.match(down.last_error, /status|refused|Connection/i);
    assert.equal((await flux.api('GET', '/api/streams/push')).body.state.status, 'live', 'the camera itself is not disturbed');
    const out = path.join(work, 'received.flv');
    const receiver = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-listen', '1', '-f', 'flv', '-i', target, '-c', 'copy', '-f', 'flv', out], { stdio: 'ignore' });
    try {
      await until('push live', 40_000, async () => (await push())?.status === 'live');
      await new Promise((res) => setTimeout(res, 3000));
    } finally {
      receiver.kill('SIGINT');
      await new Promise((res) => receiver.once('exit', res));
    }
    const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-analyzeduration', '1000000', '-count_frames', '-show_streams', '-of', 'json', out], { encoding: 'utf8' }));
    const video = probe.streams.find((s: { codec_type: string }) => s.codec_type === 'video');
    assert.equal(video.codec_name, 'h264');
    assert.equal(video.width, 640);
    assert.ok(Number(video.nb_read_frames) >= 25, `${video.nb_read_frames} frames received`);
    // the receiver is gone again: the push retries on its own
    await until('push retrying after the receiver left', 20_000, async () => (await push())?.status === 'retrying');
    assert.equal((await flux.api('DELETE', '/api/streams/push')).status, 204);
  });

  it('records segments and plays a recorded range back as HLS VOD in Chromium', async function () {
    const from = Date.now() - 1000;
    assert.equal((await flux.api('POST', '/api/streams', { id: 'rec', url: cam.url, record: true })).status, 201);
    const dir = path.join(flux.dataDir, 'streams', 'rec');
    await until('three finished segments', 40_000, () => listSegments(dir, 'rec').filter((s) => s.end < Date.now() - 2000).length >= 3);
    const to = Date.now();
    const pl = await flux.api('GET', `/api/streams/rec/recordings?from=${from}&to=${to}`);
    assert.equal(pl.status, 200);
    const text = String(pl.body);
    assert.match(text, /#EXT-X-PLAYLIST-TYPE:VOD/);
    assert.match(text, /#EXT-X-ENDLIST/);
    assert.ok((text.match(/^rec\/\d+\.ts$/gm) ?? []).length >= 2, text);
    const urls = await flux.api('GET', '/api/streams/rec/urls');
    const page = await browser.newPage();
    try {
      await page.goto(`${flux.url}${urls.body.player}&mode=vod&from=${from}&to=${to}`);
      await waitPlaying(page, 1.5, 30_000, 0);
    } finally {
      await page.close();
    }
    assert.equal((await flux.api('GET', `/api/streams/rec/recordings?from=${to}&to=${from}`)).status, 400);
    assert.equal((await flux.api('GET', `/api/streams/rec/recordings?from=0&to=${Date.now()}`)).status, 400, 'more than 24 h');
    assert.equal((await flux.api('DELETE', '/api/streams/rec')).status, 204);
    assert.equal(fs.existsSync(dir), false, 'a deleted stream leaves no files');
  });

  it('deletes segments past retention, then the oldest until all streams fit the size bound', function () {
    const root = tempDir('flux-rec-');
    const now = Date.now();
    const make = (id: string, ageS: number, bytes: number) => {
      const d = path.join(root, id, 'rec');
      fs.mkdirSync(d, { recursive: true });
      const start = Math.floor((now - ageS * 1000) / 1000);
      const f = path.join(d, `${start}.ts`);
      fs.writeFileSync(f, Buffer.alloc(bytes));
      fs.utimesSync(f, new Date((start + 10) * 1000), new Date((start + 10) * 1000));
    };
    make('a', 3 * 3600, 100); // past a's 2 h retention
    make('a', 1800, 100);
    make('a', 60, 100);
    make('b', 3000, 100); // oldest within retention: deleted for the size bound
    make('b', 30, 100);
    const r = sweep(root, [{ id: 'a', retention_hours: 2 }, { id: 'b', retention_hours: 24 }], 300, now);
    assert.equal(r.deleted, 2);
    assert.equal(r.bytes, 300);
    const left = [...listSegments(path.join(root, 'a'), 'a'), ...listSegments(path.join(root, 'b'), 'b')].map((s) => Math.floor((now - s.start) / 1000));
    assert.deepEqual(left.sort((x, y) => x - y), [30, 60, 1800]);
    const pl = vodPlaylist(listSegments(path.join(root, 'a'), 'a'), now - 7200_000, now, (n) => `rec/${n}`, now).playlist;
    assert.match(pl, /#EXT-X-DISCONTINUITY/, 'a gap between segments is marked');
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('the flux stream node in the alarm → snapshot → webhook example posts the picture and a working link', async function () {
    assert.equal((await flux.api('POST', '/api/streams', { id: 'gate', url: cam.url })).status, 201);
    const hooks: { body: any }[] = [];
    const receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        hooks.push({ body: JSON.parse(body) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    try {
      const auth = { authorization: `Bearer ${flux.token}` };
      const example = JSON.parse(fs.readFileSync(path.join(ROOT, 'flows', 'examples', 'alarm-snapshot-webhook.json'), 'utf8')) as Record<string, unknown>[];
      const hookUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/alarm-hook`;
      for (const n of example) if (n.type === 'http request') n.url = hookUrl;
      const current = (await (await fetch(`${flux.url}/editor/flows`, { headers: auth })).json()) as object[];
      const deploy = await fetch(`${flux.url}/editor/flows`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
        body: JSON.stringify([...current, ...example]),
      });
      assert.equal(deploy.status, 204);
      // the deploy answers before the new flows run
      await until('the inject node deployed', 20_000, async () => (await fetch(`${flux.url}/editor/inject/ex-snap-inject`, { method: 'POST', headers: auth })).status === 200);
      const hook = await until('the webhook call', 30_000, () => hooks[0]);
      assert.equal(hook.body.stream, 'gate');
      assert.equal(hook.body.alarm.message, 'door opened');
      assert.deepEqual(jpegSize(Buffer.from(hook.body.snapshot_jpeg_base64, 'base64')), { width: 640, height: 360 });
      const link = new URL(hook.body.snapshot_url);
      assert.match(link.pathname, /^\/api\/streams\/gate\/snapshots\/\d+\.jpg$/);
      const pic = await fetch(`${flux.url}${link.pathname}${link.search}`);
      assert.equal(pic.status, 200, 'the signed link opens without a token');
      assert.deepEqual(Buffer.from(await pic.arrayBuffer()), Buffer.from(hook.body.snapshot_jpeg_base64, 'base64'), 'the link shows that very picture');
      assert.equal((await fetch(`${flux.url}${link.pathname}`)).status, 401, 'not without the signature');
    } finally {
      receiver.close();
    }
  });
});
