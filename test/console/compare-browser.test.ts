/**
 * Raw frames, replay and shadow mode in the console, in real Chromium, with devices publishing over
 * MQTT (mqtt.js, client id = device id): the device page shows a frame just published (its hex) and
 * opens its trace; an operator stores a changed plugin version without activating it, replays the
 * recorded frames through it (exact counts, a diff side by side), runs it in shadow mode on live
 * traffic and promotes it; a viewer sees the results and the shadow but none of the write buttons.
 * The plugin versions are test/plugin-compare/fixtures.ts's: version 2 changes frames starting with
 * 9 and fails on frames starting with 8.
 */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium.ts';
import { startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';
import { digitsPlugin, frame, v2Outcome } from '../plugin-compare/fixtures.ts';

const wasm = { 'content-type': 'application/wasm' };
const ADMIN_PASSWORD = 'compare-admin-password';

describe('raw frames, replay and shadow mode in the console (Chromium)', function () {
  this.timeout(120_000);
  let flux: FluxProcess;
  let browser: Browser;
  const clients: mqtt.MqttClient[] = [];
  const contexts: BrowserContext[] = [];
  /** every frame published, by digits: the replay must count each */
  const sent: number[] = [];

  const publish = async (d: number, device = 'm0') => {
    const c = clients[Number(device.slice(1))]!;
    await c.publishAsync(`/meter/${device}/properties/report`, frame(d, device), { qos: 1 });
    sent.push(d);
  };

  async function signedIn(username: string, password: string): Promise<Page> {
    const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
    contexts.push(ctx);
    const page = await ctx.newPage();
    page.on('pageerror', (err) => console.error('page error:', err));
    await page.goto(`${flux.url}/console/`);
    await page.fill('input[name=username]', username);
    await page.fill('input[name=password]', password);
    await page.click('button[type=submit]');
    await page.waitForSelector('.content h1:has-text("Overview")');
    return page;
  }

  before(async function () {
    this.timeout(120_000);
    [flux, browser] = await Promise.all([
      startFlux({ FLUX_ADMIN_PASSWORD: ADMIN_PASSWORD, FLUX_PLUGINS_DIR: tempDir('flux-plugins-dir-'), FLUX_LOG_LEVEL: 'warn' }, { timeoutMs: 60_000 }),
      launchChromium(),
    ]);
    assert.equal((await flux.api('PUT', '/api/plugins/digits', digitsPlugin(1), wasm)).status, 201);
    const p = await flux.api('POST', '/api/products', { key: 'meter', name: 'Meter', protocol_plugin_id: 'digits', metadata: { properties: [{ id: 'n', type: 'int' }] } });
    assert.equal(p.status, 201, JSON.stringify(p.body));
    for (const [username, role] of [['opal', 'operator'], ['vera', 'viewer']]) {
      assert.equal((await flux.api('POST', '/api/users', { username, password: `${username}-password`, role })).status, 201);
    }
    for (let i = 0; i < 2; i++) {
      const d = await flux.api('POST', '/api/devices', { id: `m${i}`, product_id: 'meter' });
      assert.equal(d.status, 201, JSON.stringify(d.body));
      clients.push(await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { username: `m${i}`, password: d.body.secret, clientId: `m${i}`, reconnectPeriod: 0 }));
    }
  });

  after(async function () {
    await Promise.all(clients.map((c) => c.endAsync()));
    for (const c of contexts) await c.close();
    await browser?.close();
    const code = await flux?.stop();
    if (this.currentTest?.state === 'failed' || code !== 0) console.log(flux?.output().slice(-4000));
  });

  it('shows the newest frames a device just published, as hex, each with its trace, older ones a page later', async () => {
    for (let d = 30000; d <= 30050; d++) await publish(d, 'm0');
    await publish(12345, 'm0');
    const hex = frame(12345, 'm0').toString('hex');
    const raw = await until('the frame in the uplink log', async () => {
      const r = await flux.api('GET', '/api/devices/m0/raw');
      return (r.body.items as { msg_id: string; payload: string }[]).find((x) => x.payload === hex);
    });
    await until('its trace', async () => ((await flux.api('GET', `/api/trace/${raw.msg_id}`)).status === 200 ? true : undefined));

    const page = await signedIn('vera', 'vera-password');
    await page.goto(`${flux.url}/console/devices/m0`);
    const row = page.locator(`[data-testid=raw-frames] tr[data-msg-id="${raw.msg_id}"]`);
    await row.waitFor();
    const rows = page.locator('[data-testid=raw-frames] tr[data-msg-id]');
    assert.equal(await rows.count(), 50, 'a page of 50');
    assert.equal(await rows.first().getAttribute('data-msg-id'), raw.msg_id, 'newest first');
    await page.click('button:has-text("Older frames")');
    await page.locator('[data-testid=raw-frames] tr[data-msg-id]').nth(51).waitFor();
    assert.equal(await rows.count(), 52, 'the two older frames appended');
    assert.equal(await page.locator('[data-testid=raw-frames] td.payload').last().textContent(), frame(30000, 'm0').toString('hex').replace(/(..)(?=.)/g, '$1 '), 'the oldest last');
    assert.equal(await page.locator('button:has-text("Older frames")').count(), 0, 'no more pages');
    assert.equal(await row.locator('td.payload').textContent(), hex.replace(/(..)(?=.)/g, '$1 '), 'the bytes in hex, a pair at a time');
    assert.match((await row.textContent())!, /mqtt/);
    assert.match((await row.textContent())!, /\/meter\/m0\/properties\/report/);
    await row.locator('button.trace-link').click();
    const trace = page.locator('[data-testid=raw-trace] pre.json');
    await trace.waitFor();
    assert.match((await trace.textContent())!, new RegExp(raw.msg_id), 'the trace of that message');

    await page.selectOption('[data-testid=raw-encoding]', 'base64');
    await page.locator(`[data-testid=raw-frames] td.payload:text-is("${frame(12345, 'm0').toString('base64')}")`).waitFor();
  });

  it('lets an operator store a changed version without activating it and replay the recorded frames through it', async () => {
    // 5 frames version 2 changes, 3 it fails on, 6 it decodes the same, from two devices (and the 52 above)
    for (const d of [90001, 90002, 90003, 90004, 90005, 80001, 80002, 80003, 10001, 10002, 10003]) await publish(d, 'm0');
    for (const d of [20001, 20002, 20003]) await publish(d, 'm1');
    await until('every frame in the log', async () => {
      const n = (await Promise.all(['m0', 'm1'].map(async (id) => (await flux.api('GET', `/api/devices/${id}/raw`)).body.items.length as number))).reduce((a, b) => a + b);
      return n === sent.length ? true : undefined;
    });
    const expected = { same: 0, different: 0, failed: 0 };
    for (const d of sent) expected[v2Outcome(d)]++;
    assert.deepEqual(expected, { same: 58, different: 5, failed: 3 });

    const page = await signedIn('opal', 'opal-password');
    await page.goto(`${flux.url}/console/plugins`);
    await page.check('[data-testid=plugin-drop] input[name=store-only]');
    await page.setInputFiles('[data-testid=plugin-drop] input[type=file]', { name: 'digits.wasm', mimeType: 'application/wasm', buffer: digitsPlugin(2) });
    await page.waitForSelector('.toast:has-text("Stored digits v2, not active")');
    const stored = (await flux.api('GET', '/api/plugins/digits')).body;
    assert.equal(stored.active_version, 1, 'version 1 stays active');
    assert.deepEqual(stored.versions.map((v: { version: number }) => v.version).sort(), [1, 2]);

    await page.goto(`${flux.url}/console/plugins/digits`);
    const form = page.locator('[data-testid=replay-form]');
    assert.equal(await form.locator('select[name=version]').inputValue(), '2', 'the stored, inactive version is offered first');
    await form.locator('button[type=submit]').click();
    const report = page.locator('[data-testid=replay-report][data-state=done]');
    await report.waitFor({ timeout: 30_000 });
    const count = async (name: string) => report.locator(`[data-testid=replay-counts] [data-count=${name}]`).textContent();
    assert.equal(await count('total'), String(sent.length));
    assert.equal(await count('same'), String(expected.same));
    assert.equal(await count('different'), String(expected.different));
    assert.equal(await count('failed'), String(expected.failed));
    const diffs = report.locator('[data-testid=replay-diffs] tr.diff');
    assert.equal(await diffs.count(), expected.different + expected.failed);
    const changed = diffs.filter({ hasText: '"n": 1750000090001' });
    assert.equal(await changed.count(), 1);
    assert.match((await changed.locator('td.output').nth(1).textContent())!, /"n": -1/, 'version 2 beside version 1');
    assert.match((await changed.textContent())!, /m0/);
    const failed = diffs.filter({ hasText: '"n": 1750000080001' });
    assert.equal(await failed.locator('td.output').nth(1).locator('.error').count(), 1, 'the failure is shown with its cause');
    // the message id opens its trace
    await changed.locator('button.link').click();
    await page.locator('[data-testid=replay-diffs] pre.json:has-text("spans")').first().waitFor();
    assert.equal((await flux.api('GET', '/api/plugins/digits')).body.active_version, 1, 'a replay changes nothing');
  });

  it('runs a shadow version on live traffic that a viewer can watch without write buttons, then promotes it', async () => {
    const page = await signedIn('opal', 'opal-password');
    await page.goto(`${flux.url}/console/plugins/digits`);
    const form = page.locator('[data-testid=shadow-form]');
    await form.locator('select[name=version]').selectOption('2');
    await form.locator('button[type=submit]').click();
    const status = page.locator('[data-testid=shadow-status]');
    await status.waitFor();
    const count = (p: Page, name: string) => p.locator(`[data-testid=shadow-counts] [data-count=${name}]`).textContent();
    assert.equal(await count(page, 'different'), '0');

    for (const d of [90011, 90012, 10011]) await publish(d, 'm1');
    await until('the counters moved on the page (refreshed every 2 s)', async () => ((await count(page, 'different')) === '2' && (await count(page, 'same')) === '1' ? true : undefined), 20_000);
    await page.locator('[data-testid=shadow-diffs] tr.diff:has-text("90012")').first().waitFor();

    const viewer = await signedIn('vera', 'vera-password');
    await viewer.goto(`${flux.url}/console/plugins/digits`);
    await viewer.locator('[data-testid=shadow-status]').waitFor();
    assert.equal(await count(viewer, 'different'), '2');
    await viewer.locator('[data-testid=replay-report][data-state=done]').waitFor();
    assert.equal(await viewer.locator('[data-testid=replay-counts] [data-count=different]').textContent(), '5', 'the last replay');
    for (const c of ['button:has-text("Promote")', 'button:has-text("Stop")', '[data-testid=replay-form]', '[data-testid=shadow-form]', 'button:has-text("Replay")', 'button:has-text("Cancel")']) {
      assert.equal(await viewer.locator(`.content ${c}`).count(), 0, `a viewer sees no ${c}`);
    }
    await viewer.goto(`${flux.url}/console/plugins`);
    await viewer.waitForSelector('[data-testid=plugin-list] a:has-text("digits")');
    assert.equal(await viewer.locator('.content input[name=store-only]').count(), 0, 'no upload for a viewer');

    page.once('dialog', (d) => void d.accept());
    await page.click('.card:has([data-testid=shadow-status]) button:has-text("Promote")');
    await page.waitForSelector('.toast:has-text("Promoted")');
    await page.locator('[data-testid=shadow-none]').waitFor();
    assert.equal((await flux.api('GET', '/api/plugins/digits')).body.active_version, 2, 'version 2 is active');
    await page.locator('tr.active:has-text("v2")').waitFor();
  });

  it('cancels a running replay with its Cancel button', async () => {
    // version 3 loops on frames starting with 0, each cut off at its 1 s deadline: a replay slow enough to cancel
    const v3 = await flux.api('PUT', '/api/plugins/digits?activate=false&deadline_ms=1000', digitsPlugin(3), wasm);
    assert.equal(v3.status, 201, JSON.stringify(v3.body));
    for (let d = 0; d < 20; d++) await publish(d, 'm1');
    const page = await signedIn('opal', 'opal-password');
    await page.goto(`${flux.url}/console/plugins/digits`);
    const form = page.locator('[data-testid=replay-form]');
    await form.locator('select[name=version]').selectOption('3');
    await form.locator('button[type=submit]').click();
    await page.locator('[data-testid=replay-report][data-state=running]').waitFor();
    await form.locator('button:has-text("Cancel")').click();
    await page.locator('[data-testid=replay-report][data-state=cancelled]').waitFor();
    const r = await flux.api('GET', '/api/plugins/digits/replay');
    assert.equal(r.body.state, 'cancelled');
    assert.ok(r.body.total < sent.length, `stopped after ${r.body.total} of ${sent.length} frames`);
  });
});
