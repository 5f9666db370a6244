/**
 * The `flux decode` dialog in real Chromium: for a plugin with a shadow version it shows the active
 * version and the shadow's counters from live traffic, and runs a replay over a time range with
 * its diff list, through the editor's own endpoints and login.
 */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/chromium.ts';
import { startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';
import { digitsPlugin, frame } from '../plugin-compare/fixtures.ts';

declare const RED: { editor: { edit(node: unknown): void }; nodes: { node(id: string): unknown } };

describe('the flux decode dialog: versions, shadow counters and replay in Chromium', function () {
  this.timeout(120_000);
  let flux: FluxProcess;
  let browser: Browser;
  let device: mqtt.MqttClient;

  before(async function () {
    flux = await startFlux({ FLUX_PLUGINS_DIR: tempDir('flux-plugins-dir-'), FLUX_LOG_LEVEL: 'warn' });
    const wasm = { 'content-type': 'application/wasm' };
    assert.equal((await flux.api('PUT', '/api/plugins/digits', digitsPlugin(1), wasm)).status, 201);
    assert.equal((await flux.api('PUT', '/api/plugins/digits?activate=false', digitsPlugin(2), wasm)).status, 201);
    assert.equal((await flux.api('POST', '/api/products', { key: 'meter', name: 'Meter', protocol_plugin_id: 'digits', metadata: { properties: [{ id: 'n', type: 'int' }] } })).status, 201);
    const d = await flux.api('POST', '/api/devices', { id: 'm0', product_id: 'meter' });
    assert.equal((await flux.api('POST', '/api/plugins/digits/shadow', { version: 2 })).status, 201);
    device = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { username: 'm0', password: d.body.secret, clientId: 'm0', reconnectPeriod: 0 });
    // 10 frames version 2 decodes the same, 5 it decodes differently (they start with 9)
    const ds = [...Array.from({ length: 10 }, (_, k) => 10_000 + 10 * k), ...Array.from({ length: 5 }, (_, k) => 90_000 + 10 * k)];
    for (const n of ds) await device.publishAsync('/meter/m0/properties/report', frame(n, 'm0'), { qos: 1 });
    await until('the shadow compared all 15 frames', async () => {
      const s = (await flux.api('GET', '/api/plugins/digits/shadow')).body;
      return s.same + s.different + s.failed === 15 ? true : undefined;
    });
    browser = await launchChromium();
  });

  after(async function () {
    await device?.endAsync();
    await browser?.close();
    const code = await flux?.stop();
    if (this.currentTest?.state === 'failed' || code !== 0) console.log(flux?.output().slice(-3000));
  });

  it('shows the active version and the shadow counters, and replays with the diff list', async function () {
    const page = await browser.newPage({ locale: 'en-US' });
    await page.goto(`${flux.url}/editor/`);
    await page.waitForSelector('#node-dialog-login-fields input[type="password"]', { timeout: 30_000 });
    await page.locator('#node-dialog-login-fields input').first().fill('admin');
    await page.locator('#node-dialog-login-fields input[type="password"]').fill(flux.token);
    await page.click('#node-dialog-login-submit');
    await page.locator('.red-ui-palette-node[data-palette-type="flux decode"]').waitFor({ state: 'attached', timeout: 30_000 });
    // the default flow's decode node
    await page.waitForFunction(() => Boolean(RED.nodes.node('flux-decode')), undefined, { timeout: 30_000 });
    await page.evaluate(() => RED.editor.edit(RED.nodes.node('flux-decode')));
    await page.locator('#node-input-plugin option[value="digits"]').waitFor({ state: 'attached', timeout: 15_000 });
    await page.selectOption('#node-input-plugin', 'digits');
    const active = page.locator('#flux-compare-active');
    await active.waitFor({ timeout: 15_000 });
    assert.equal(await active.textContent(), 'active: v1');
    assert.equal(await page.locator('#flux-compare-shadow').textContent(), 'shadow: v2 — same 10, different 5, failed 0, dropped 0');
    assert.equal(await page.locator('#flux-replay-version').inputValue(), '2', 'the shadow version is the one to replay');

    await page.click('#flux-replay-run');
    await page.waitForFunction(() => /frames:/.test(document.querySelector('#flux-replay-result')?.textContent ?? ''), undefined, { timeout: 30_000 });
    assert.equal(await page.locator('#flux-replay-result').textContent(), '15 frames: same 10, different 5, failed 0');
    const diffs = page.locator('.flux-replay-diff');
    assert.equal(await diffs.count(), 5);
    const first = await diffs.first().innerText();
    assert.match(first, /m0/);
    assert.match(first, /^- \{"device_id":"m0","ts":1750000090000,"values":\{"n":1750000090000\}\}$/m);
    assert.match(first, /^\+ \{"device_id":"m0","values":\{"n":-1\}\}$/m);
    await page.close();
  });
});
