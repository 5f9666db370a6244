/** Headless Chromium for the stream tests: autoplay allowed (the player's video is muted). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export async function launchBrowser(): Promise<Browser> {
  assert.ok(fs.existsSync(CHROMIUM), `Chromium is needed at ${CHROMIUM} (apt-get install chromium; .ci/run does)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
}

export interface PlayerState {
  mode: string;
  firstFrameMs: number | null;
  restarts: number;
  errors: string[];
  currentTime: number;
}

export const playerState = (page: Page): Promise<PlayerState> =>
  page.evaluate(() => {
    const s = (window as unknown as { fluxPlayer?: Omit<PlayerState, 'currentTime'> }).fluxPlayer;
    const v = document.querySelector('video')!;
    return { mode: s?.mode ?? '', firstFrameMs: s?.firstFrameMs ?? null, restarts: s?.restarts ?? 0, errors: s?.errors ?? [], currentTime: v.currentTime };
  });

/** Waits until the video's currentTime has advanced by `seconds` from `from` (decoded frames play). */
export async function waitPlaying(page: Page, seconds: number, timeoutMs: number, from?: number): Promise<PlayerState> {
  const start = from ?? (await playerState(page)).currentTime;
  const deadline = Date.now() + timeoutMs;
  let st = await playerState(page);
  while (Date.now() < deadline) {
    st = await playerState(page);
    if (st.currentTime >= start + seconds) return st;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`video did not advance ${seconds} s within ${timeoutMs} ms (from ${start}, now ${JSON.stringify(st)})`);
}

/** width and height from a JPEG's SOF marker */
export function jpegSize(b: Buffer): { width: number; height: number } {
  assert.equal(b.readUInt16BE(0), 0xffd8, 'a JPEG starts with SOI');
  let i = 2;
  while (i < b.length - 9) {
    if (b[i] !== 0xff) throw new Error(`bad JPEG marker at ${i}`);
    const marker = b[i + 1]!;
    const len = b.readUInt16BE(i + 2);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7) };
    }
    i += 2 + len;
  }
  throw new Error('no SOF marker in the JPEG');
}
