/**
 * GraphiQL works offline: real Chromium (playwright-core) opens /api/graphql?access_token=… with
 * every request to anything but this FLUX refused, and runs a query in the page. In-process FLUX.
 */
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';
import { launchChromium } from '../helpers/chromium.ts';

describe('GraphiQL offline (Chromium, outside requests refused)', function () {
  this.timeout(90_000);
  let flux: Flux;
  let base: string;
  let browser: Browser;

  before(async () => {
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN });
    flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
    base = `http://127.0.0.1:${(await flux.start()).http}`;
    await flux.ctx.registry.products.create({ key: 'graphiql_probe', name: 'Probe' });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await flux?.stop();
  });

  it('loads with no request outside FLUX and runs a query', async () => {
    const page = await browser.newPage();
    const outside: string[] = [];
    await page.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.protocol === 'data:' || url.protocol === 'blob:' || url.hostname === '127.0.0.1' || url.hostname === 'localhost') return route.continue();
      outside.push(url.href);
      return route.abort('internetdisconnected');
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}/api/graphql?access_token=${TEST_TOKEN}`);
    const editor = page.locator('.graphiql-query-editor');
    await editor.waitFor({ timeout: 30_000 });
    await editor.click();
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Delete');
    await page.keyboard.insertText('{ products(key: "graphiql_probe") { items { key name } page { total } } }');
    await page.locator('.graphiql-execute-button').click();
    const response = page.locator('.graphiql-response');
    await page.waitForFunction(() => (document.querySelector('.graphiql-response')?.textContent ?? '').includes('graphiql_probe'), undefined, { timeout: 20_000 });
    const text = (await response.textContent()) ?? '';
    assert.match(text, /"name":\s*"Probe"/);
    assert.match(text, /"total":\s*1/);
    assert.deepEqual(outside, [], 'the page asked for nothing outside FLUX');
    assert.deepEqual(errors, []);
    await page.close();
  });
});
