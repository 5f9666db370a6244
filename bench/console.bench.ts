/**
 * The operator console in Chromium (Debian's, through playwright-core), against a FLUX with 10,000
 * devices in its registry: first paint and the device list's time to show, the JavaScript a first
 * visit loads, and the live chart of one device fed at 100 msg/s (redraw rate and page frame rate,
 * from requestAnimationFrame in the page).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import mqtt from 'mqtt';
import type { Bench, BenchRow } from './types.ts';
import { provision, startFlux, tempDir } from './lib/flux.ts';
import { launchChromium } from '../test/helpers/chromium.ts';
import { initialScripts } from '../test/console/bundle-files.ts';
import { ROOT } from '../test/helpers/flux-process.ts';

const DEVICES = 10_000;
const RATE = 100;

const bench: Bench = async ({ quick }) => {
  const rows: BenchRow[] = [];
  const dist = path.join(ROOT, 'console', 'dist');
  const initial = initialScripts(dist);
  const gz = initial.reduce((n, f) => n + gzipSync(fs.readFileSync(path.join(dist, f)), { level: 9 }).length, 0);
  rows.push({ group: 'console', name: 'initial JavaScript (first visit, gzip -9)', value: gz / 1024, unit: 'KB', target: '<= 150 KB', met: gz <= 150 * 1024, note: initial.join(' ') });

  const dataDir = tempDir('flux-bench-console-');
  const metadata = { properties: [{ id: 'temperature', type: 'float', unit: '°C' }, { id: 'humidity', type: 'float', unit: '%' }] };
  const devices = await provision(dataDir, { productKey: 'console_bench', count: DEVICES, prefix: 'dev', metadata });
  const flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' }, { dataDir, timeoutMs: 120_000 });
  const browser = await launchChromium();
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await ctx.addInitScript((token: string) => sessionStorage.setItem('flux.console.token', token), flux.token);
    const page = await ctx.newPage();
    // Warm the server's caches the way any earlier visitor would (not the browser's: a new context per visit).
    await fetch(`${flux.url}/console/devices`);
    const visits = quick ? 2 : 5;
    const fcp: number[] = [];
    const listShown: number[] = [];
    for (let i = 0; i < visits; i++) {
      const p = await ctx.newPage();
      await p.goto(`${flux.url}/console/devices`, { waitUntil: 'commit' });
      await p.waitForSelector('[data-testid=device-list] tbody tr', { timeout: 60_000 });
      const t = await p.evaluate(() => ({
        fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
        shown: performance.now(),
      }));
      fcp.push(t.fcp);
      listShown.push(t.shown);
      await p.close();
    }
    const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    rows.push({ group: 'console', name: `first contentful paint, device list, ${DEVICES.toLocaleString('en-US')} devices`, value: median(fcp), unit: 'ms', target: '< 1000 ms', met: median(fcp) < 1000, note: `median of ${visits} visits (Chromium performance timings); load average ${os.loadavg()[0]!.toFixed(1)} on ${os.cpus().length} cores` });
    rows.push({ group: 'console', name: `device list shown (first page of 50 of ${DEVICES.toLocaleString('en-US')})`, value: median(listShown), unit: 'ms', note: 'navigation start → table rows in the DOM' });

    // Paging deep into the list costs one server page, not the whole registry.
    const t0 = Date.now();
    await page.goto(`${flux.url}/console/devices?offset=9950`);
    await page.waitForSelector('[data-testid=device-list] tbody tr a:has-text("dev_9")', { timeout: 60_000 });
    rows.push({ group: 'console', name: 'device list, last page (offset 9,950), navigation to rows', value: Date.now() - t0, unit: 'ms' });

    // Live chart: one device publishing RATE msg/s over MQTT.
    const dev = devices[0]!;
    await page.goto(`${flux.url}/console/devices/${dev.username}`);
    await page.waitForSelector('.live-status:has-text("live")', { timeout: 60_000 });
    // a device's client id is its id or starts with `{id}/`
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { username: dev.username, password: dev.password, clientId: `${dev.username}/bench` });
    const seconds = quick ? 5 : 10;
    let n = 0;
    const timer = setInterval(() => {
      for (let k = 0; k < RATE / 20; k++) {
        n++;
        void client.publishAsync(dev.topic, JSON.stringify({ values: { temperature: 20 + 5 * Math.sin(n / 50), humidity: 40 + (n % 10) } }), { qos: 0 });
      }
    }, 50);
    await new Promise((r) => setTimeout(r, 2000)); // the chart has its series
    const measured = await page.evaluate(async (ms: number) => {
      const live = (globalThis as any).__fluxLive as { messages: number; draws: number };
      const m0 = live.messages;
      const d0 = live.draws;
      let frames = 0;
      let worst = 0;
      let last = performance.now();
      const t0 = last;
      await new Promise<void>((resolve) => {
        const tick = (now: number) => {
          frames++;
          worst = Math.max(worst, now - last);
          last = now;
          if (now - t0 < ms) requestAnimationFrame(tick);
          else resolve();
        };
        requestAnimationFrame(tick);
      });
      const s = (performance.now() - t0) / 1000;
      return { fps: frames / s, worstFrameMs: worst, drawsPerS: (live.draws - d0) / s, msgsPerS: (live.messages - m0) / s };
    }, seconds * 1000);
    clearInterval(timer);
    await client.endAsync();
    rows.push({ group: 'console', name: `live chart redraws, one device at ${RATE} msg/s`, value: measured.drawsPerS, unit: 'Hz', target: '>= 10 Hz', met: measured.drawsPerS >= 10, note: `${Math.round(measured.msgsPerS)} msg/s reached the page over /api/ws` });
    rows.push({ group: 'console', name: `page frame rate while the live chart runs (${RATE} msg/s)`, value: measured.fps, unit: 'fps', target: '>= 30 fps', met: measured.fps >= 30, note: `worst frame ${Math.round(measured.worstFrameMs)} ms; headless Chromium, --disable-gpu` });
  } finally {
    await browser.close();
    await flux.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return rows;
};

export default bench;
