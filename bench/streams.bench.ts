/**
 * Camera streams with the real test camera (GStreamer RTSP), real ffmpeg and headless Chromium:
 * first frame cold and warm (HLS and FLV), latency at the player, CPU per copied 1080p stream,
 * and recovery after the camera returns.
 */
import fs from 'node:fs';
import type { Page } from 'playwright-core';
import type { Bench, BenchRow } from './types.ts';
import { procStats, startFlux, type FluxProcess } from './lib/flux.ts';
import { startCamera, freePort, type Camera } from '../test/stream/camera.ts';
import { launchBrowser } from '../test/stream/browser.ts';

const group = 'streams';
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ms: number, fn: () => Promise<boolean> | boolean): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(50);
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

async function firstFrame(flux: FluxProcess, page: Page, id: string, mode: 'hls' | 'flv'): Promise<number> {
  const urls = (await flux.api('GET', `/api/streams/${id}/urls`)).body;
  const t0 = Date.now();
  await page.goto(`${flux.url}${urls.player}&mode=${mode}`);
  await page.waitForFunction(() => document.querySelector('video')!.currentTime > 0, null, { polling: 20, timeout: 30_000 });
  return Date.now() - t0;
}

const status = async (flux: FluxProcess, id: string) => (await flux.api('GET', `/api/streams/${id}`)).body.state;

/** ffmpeg processes are the keeper's children */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      if (Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === pid && st.includes('(ffmpeg)')) out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}

const bench: Bench = async ({ quick }) => {
  const rows: BenchRow[] = [];
  const reps = quick ? 2 : 3;
  let cam: Camera | undefined;
  let cam1080: Camera | undefined;
  let flux: FluxProcess | undefined;
  const browser = await launchBrowser();
  try {
    cam = await startCamera();
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn', FLUX_STREAM_IDLE_S: '2' }, { timeoutMs: 60_000 });
    const f = flux;

    // first frame from cold: a fresh on-demand stream each time (no ffmpeg running)
    for (const mode of ['hls', 'flv'] as const) {
      const cold: number[] = [];
      const warm: number[] = [];
      for (let i = 0; i < reps; i++) {
        const id = `cold-${mode}-${i}`;
        await f.api('POST', '/api/streams', { id, url: cam.url });
        const page = await browser.newPage();
        cold.push(await firstFrame(f, page, id, mode));
        // warm: the stream is live, a second viewer arrives
        const page2 = await browser.newPage();
        warm.push(await firstFrame(f, page2, id, mode));
        await page2.close();
        await page.close();
        await f.api('DELETE', `/api/streams/${id}`);
      }
      rows.push({ group, name: `first frame in Chromium, ${mode.toUpperCase()}, cold (ffmpeg not running)`, value: mean(cold), unit: 'ms', target: '< 3000', met: mean(cold) < 3000, note: `${reps} runs, max ${Math.max(...cold)} ms; 640x360 camera, 1 s GOP` });
      rows.push({ group, name: `first frame in Chromium, ${mode.toUpperCase()}, stream already live`, value: mean(warm), unit: 'ms', target: '< 1000', met: mean(warm) < 1000, note: `${reps} runs, max ${Math.max(...warm)} ms` });
    }

    // latency at the player: HLS from the playlist's program date-time, FLV from the arrival clock
    await f.api('POST', '/api/streams', { id: 'lat', url: cam.url });
    await f.api('POST', '/api/streams/lat/start');
    const page = await browser.newPage();
    await firstFrame(f, page, 'lat', 'hls');
    await sleep(5000);
    const hls: number[] = [];
    for (let i = 0; i < 5; i++) {
      hls.push(await page.evaluate(() => Date.now() - ((window as unknown as { fluxPlayer: { hls: { playingDate: Date } } }).fluxPlayer.hls.playingDate?.getTime() ?? NaN)));
      await sleep(1000);
    }
    await firstFrame(f, page, 'lat', 'flv');
    await sleep(5000);
    const flv: number[] = [];
    for (let i = 0; i < 5; i++) {
      const base = (await status(f, 'lat')).flv_bases[0] as number;
      const [now, t] = await page.evaluate(() => [Date.now(), document.querySelector('video')!.currentTime]);
      flv.push(now! - base - t! * 1000);
      await sleep(1000);
    }
    await page.close();
    rows.push({ group, name: 'HLS latency at the player (hls.js, 1 s segments)', value: mean(hls), unit: 'ms', target: '< 3000', met: mean(hls) < 3000, note: 'now − the playing frame\'s EXT-X-PROGRAM-DATE-TIME (stamped by ffmpeg); 5 samples' });
    rows.push({ group, name: 'HTTP-FLV latency at the player (mpegts.js)', value: mean(flv), unit: 'ms', target: '< 1500', met: mean(flv) < 1500, note: 'now − arrival at FLUX of the shown frame; 5 samples' });
    await f.api('DELETE', '/api/streams/lat');

    // recovery: the camera dies, comes back 3 s later; time from its return to `live`
    const port = await freePort();
    let rcam = await startCamera({ port });
    await f.api('POST', '/api/streams', { id: 'rec', url: rcam.url, on_demand: false });
    await until('rec live', 30_000, async () => (await status(f, 'rec')).status === 'live');
    const recovery: number[] = [];
    for (let i = 0; i < reps; i++) {
      await rcam.kill();
      await until('rec retrying', 10_000, async () => (await status(f, 'rec')).status !== 'live');
      await sleep(3000);
      rcam = await startCamera({ port });
      const back = Date.now();
      await until('rec live again', 30_000, async () => (await status(f, 'rec')).status === 'live');
      recovery.push(Date.now() - back);
      await sleep(2000);
    }
    await rcam.kill();
    await f.api('DELETE', '/api/streams/rec');
    rows.push({ group, name: 'recovery: camera back → stream live again', value: mean(recovery), unit: 'ms', target: '< 5000', met: mean(recovery) < 5000, note: `${reps} outages of 3 s; max ${Math.max(...recovery)} ms` });

    // CPU of copied 1080p streams (no viewers: HLS + FLV hub running)
    await cam.kill();
    cam = undefined;
    cam1080 = await startCamera({ size: '1920x1080', fps: 25 });
    const n = 3;
    for (let i = 0; i < n; i++) {
      await f.api('POST', '/api/streams', { id: `hd${i}`, url: cam1080.url });
      await f.api('POST', `/api/streams/hd${i}/start`);
    }
    await until('1080p streams live', 60_000, async () => {
      for (let i = 0; i < n; i++) if ((await status(f, `hd${i}`)).status !== 'live') return false;
      return true;
    });
    await sleep(3000);
    const keepers = await Promise.all(Array.from({ length: n }, async (_, i) => (await status(f, `hd${i}`)).pid as number));
    const ffmpegs = keepers.flatMap(childrenOf);
    const cpu = () => ffmpegs.reduce((s, p) => s + procStats(p).cpuSeconds, 0);
    const fluxPid = f.child.pid!;
    const window = quick ? 10 : 20;
    const c0 = cpu();
    const f0 = procStats(fluxPid).cpuSeconds;
    await sleep(window * 1000);
    const perStream = ((cpu() - c0) / window / n) * 100;
    const fluxPer = ((procStats(fluxPid).cpuSeconds - f0) / window / n) * 100;
    rows.push({ group, name: 'CPU per copied 1080p stream: its ffmpeg', value: perStream, unit: '% of a core', note: `${n} streams of a 1920x1080 25 fps H.264 camera, ${window} s; ${ffmpegs.length} ffmpeg` });
    rows.push({ group, name: 'CPU per copied 1080p stream: FLUX (FLV hub, supervisor)', value: fluxPer, unit: '% of a core', note: 'the whole FLUX process, divided by the streams' });
    rows.push({ group, name: 'copied 1080p streams 2 cores carry (CPU only)', value: Math.floor(200 / (perStream + fluxPer)), unit: 'streams', note: 'not counting the cameras, viewers or disk; bandwidth and disk bound it earlier' });
  } finally {
    await browser.close();
    await flux?.stop();
    await cam?.kill();
    await cam1080?.kill();
  }
  return rows;
};

export default bench;
