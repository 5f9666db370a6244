/**
 * The operator console in real Chromium, one test per page, each doing what an operator does there.
 * One FLUX process and one browser for the file; demo data from test/console/seed.ts.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium.ts';
import { ROOT, startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { seed, uplink, type Seeded } from './seed.ts';

function mosquittoPub(port: number, dev: { id: string; secret: string }, topic: string, message: string, count = 1): Promise<void> {
  // -l: one message per input line, one connection for all of them.
  return new Promise((resolve, reject) => {
    const p = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', dev.id, '-P', dev.secret, '-i', dev.id, '-q', '1', '-t', topic, '-l'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`mosquitto_pub exited ${code}: ${err}`))));
    p.stdin.end(Array.from({ length: count }, () => message).join('\n') + '\n');
  });
}

describe('the operator console in Chromium', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let browser: Browser;
  let ctx: BrowserContext;
  let page: Page;
  let data: Seeded;

  const open = async (p: string) => {
    await page.goto(`${flux.url}/console/${p}`);
    await page.waitForSelector('.content h1');
  };

  before(async function () {
    this.timeout(120_000);
    [flux, browser] = await Promise.all([startFlux({}, { timeoutMs: 60_000 }), launchChromium()]);
    data = await seed(flux, { devices: 3, samples: 3 });
    ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page = await ctx.newPage();
    page.on('pageerror', (err) => console.error('page error:', err));
  });

  after(async function () {
    await browser?.close();
    await flux?.stop();
  });

  it('signs in with the admin token and shows the overview with live counts', async function () {
    await page.goto(`${flux.url}/console/`);
    await page.click('text=Sign in with an API token instead');
    await page.fill('input[name=token]', 'wrong-token-0123456789');
    await page.click('button[type=submit]');
    await page.waitForSelector('.login .error');
    await page.fill('input[name=token]', flux.token);
    await page.click('button[type=submit]');
    await page.waitForSelector('.content h1:has-text("Overview")');
    await page.waitForFunction(() => document.querySelector('[data-testid=total]')?.textContent === '3');
    assert.equal(await page.textContent('.top .who'), 'admin-token · admin', 'the break-glass token acts as admin under its own name');
  });

  it('Products: creates a product with a thing model from the table editor and a protocol plugin', async function () {
    await open('products');
    await page.click('text=+ New product');
    await page.fill('input[name=key]', 'boiler');
    await page.fill('input[name=name]', 'Boiler');
    await page.selectOption('select[name=plugin]', 'modbus');
    await page.click('text=+ Add a row');
    await page.fill('table.model tbody tr:nth-child(1) input[aria-label=Identifier]', 'temperature');
    await page.fill('table.model tbody tr:nth-child(1) input[aria-label=Unit]', '°C');
    await page.click('.tabs button:has-text("Commands")');
    await page.click('text=+ Add a row');
    await page.fill('table.model[data-kind=commands] tbody tr:nth-child(1) input[aria-label=Identifier]', 'reboot');
    await page.click('text=Create product');
    await page.waitForURL(/\/console\/products\/[0-9a-f-]{36}$/);
    const r = await flux.api('GET', '/api/products/boiler');
    assert.equal(r.status, 200);
    assert.equal(r.body.protocol_plugin_id, 'modbus');
    assert.deepEqual(r.body.metadata.properties, [{ id: 'temperature', type: 'float', unit: '°C' }]);
    assert.deepEqual(r.body.metadata.commands, [{ id: 'reboot' }]);
  });

  it('Devices: creates a device (its secret shown once), finds it by search and opens it', async function () {
    await open('devices');
    await page.click('text=+ New device');
    await page.fill('[data-testid=new-device] input[name=id]', 'boiler_7');
    await page.selectOption('[data-testid=new-device] select[name=product_id]', { label: 'boiler · Boiler' });
    await page.click('text=Create device');
    const secret = await page.textContent('[data-secret]');
    assert.match(secret ?? '', /^\S{16,}$/);
    await page.fill('input[type=search]', 'boiler_');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=device-list] tbody tr').length === 1);
    await page.click('[data-testid=device-list] a:has-text("boiler_7")');
    await page.waitForSelector('h1:has-text("boiler_7")');
    // the secret works: the device logs in with it
    await mosquittoPub(flux.mqtt, { id: 'boiler_7', secret: secret! }, '/boiler/boiler_7/properties/report', '\x01\x03\x02\x01\xc5\x00\x00');
  });

  it('Devices: the live chart moves while mosquitto_pub publishes, and the latest values follow', async function () {
    const dev = data.devices[1]!;
    await open(`devices/${dev.id}`);
    await page.waitForSelector('.live-status:has-text("live")');
    const before = await page.evaluate(() => ({ ...(globalThis as any).__fluxLive }));
    const values = Array.from({ length: 20 }, (_, i) => `{"values":{"temperature":${30 + i},"humidity":50}}`);
    for (const v of values) await mosquittoPub(flux.mqtt, dev, `/env_sensor/${dev.id}/properties/report`, v);
    await page.waitForFunction((b) => (globalThis as any).__fluxLive.messages >= b.messages + 20, before, { timeout: 20_000 });
    const after = await page.evaluate(() => ({ ...(globalThis as any).__fluxLive }));
    assert.ok(after.draws > before.draws, 'the chart was redrawn');
    await page.waitForSelector('[data-testid=latest] td:has-text("49 °C")', { timeout: 5000 });
    // the chart's legend shows the newest value under the cursor-less default: the series exist
    assert.ok(await page.locator('.live-chart .u-series:has-text("temperature")').count());
  });

  it('Plugins: uploads a .wasm with the file picker and tries a decoder on hex bytes', async function () {
    await open('plugins');
    await page.fill('[data-testid=plugin-drop] input:not([type=file])', 'modbus-copy');
    await page.setInputFiles('input[type=file]', path.join(ROOT, 'plugins', 'dist', 'modbus.wasm'));
    await page.waitForSelector('[data-testid=plugin-list] a:has-text("modbus-copy")');
    await page.click('[data-testid=plugin-list] a:has-text("modbus-copy")');
    await page.fill('[data-testid=try-decode] input[name=bytes]', '01 03 02 01 c5 00 00');
    await page.click('[data-testid=try-decode] button:has-text("Decode")');
    const out = await page.waitForSelector('[data-testid=try-decode] pre.json');
    assert.match((await out.textContent()) ?? '', /"temperature": 45\.3/);
  });

  it('Rules: writes a rule in the editor, test-runs it and shows its log line; a syntax error is marked at its line', async function () {
    await open('rules/new');
    await page.fill('input[name=name]', 'hot boiler');
    const editor = page.locator('[data-testid=script-editor] .cm-content');
    await editor.waitFor();
    await editor.click();
    await page.keyboard.press('Control+A');
    await page.keyboard.press('Delete');
    await page.keyboard.type('log_info("boiler at " + msg.values.temperature);\nreturn msg.values.temperature > 40;');
    await page.fill('input[aria-label="Sample values (JSON)"]', '{"temperature": 52}');
    await page.click('text=Run test');
    const logs = await page.waitForSelector('[data-testid=test-logs]');
    assert.match((await logs.textContent()) ?? '', /\[info\] boiler at 52/);
    assert.match((await page.textContent('[data-testid=test-result]')) ?? '', /Triggered/);
    await page.click('button:has-text("Save")');
    await page.waitForURL(/\/console\/rules\/[0-9a-f-]{36}$/);
    const rules = await flux.api('GET', '/api/rules');
    assert.ok(rules.body.items.some((r: { name: string; trigger_script: string }) => r.name === 'hot boiler' && r.trigger_script.includes('boiler at')));
    // now break it: the error is marked on line 3, where it is
    await editor.click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('\nlet = ;');
    await page.click('button:has-text("Save")');
    await page.waitForSelector('.toast-error:has-text("line 3")');
    await page.waitForSelector('.cm-lintRange-error');
  });

  it('Alarm center: acknowledges an alarm with a note, then clears it', async function () {
    await uplink(flux, data.devices[2]!, { temperature: 48.5, humidity: 30 });
    await open('alarms');
    const row = page.locator('[data-testid=alarm-list] tbody tr', { hasText: 'temperature 48.5' });
    await row.waitFor({ timeout: 10_000 });
    await row.locator('button:has-text("Acknowledge")').click();
    await page.fill('.ack-form input', 'fan replaced by Li Wei');
    await page.click('.ack-form button[type=submit]');
    await page.waitForSelector('.toast:has-text("Acknowledged")');
    const list = await flux.api('GET', `/api/alarms?device_id=${data.devices[2]!.id}`);
    const alarm = list.body.items.find((a: { message: string }) => a.message === 'temperature 48.5 °C');
    assert.equal(alarm.state, 'acknowledged');
    assert.equal(alarm.ack_note, 'fan replaced by Li Wei');
    assert.equal(alarm.acked_by, 'admin-token');
    await page.waitForSelector('[data-testid=alarm-list] .hint:has-text("Note by admin-token: fan replaced by Li Wei")');
    await row.locator('button:has-text("Clear")').click();
    await page.waitForSelector('.toast:has-text("Cleared")');
    assert.equal((await flux.api('GET', `/api/alarms/${alarm.id}`)).body.state, 'cleared');
  });

  it('Reports: shows the telemetry of chosen devices as a table and downloads it as CSV', async function () {
    await open('reports');
    await page.click(`.choices button:has-text("${data.devices[0]!.id}")`);
    await page.click(`.choices button:has-text("${data.devices[1]!.id}")`);
    await page.click('button:has-text("Show")');
    await page.waitForSelector('[data-testid=report-table] tbody tr');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=csv]')]);
    const file = path.join(flux.dataDir, 'report.csv');
    await download.saveAs(file);
    const lines = fs.readFileSync(file, 'utf8').trim().split(/\r?\n/);
    assert.equal(lines[0], 'device_id,time,metric,value');
    assert.equal(lines.filter((l) => l.startsWith('device_id')).length, 1, 'one header');
    assert.ok(lines.some((l) => l.startsWith(`${data.devices[0]!.id},`)) && lines.some((l) => l.startsWith(`${data.devices[1]!.id},`)));
  });

  it('Video wall: says there are no streams when the server has none', async function () {
    await open('video');
    await page.waitForSelector('.empty:has-text("No streams")');
  });

  it('System: shows the version and the components; the console follows a Chinese browser', async function () {
    await open('system/settings');
    await page.waitForSelector('dd:has-text("0.")');
    const zh = await browser.newContext({ locale: 'zh-CN' });
    await zh.addInitScript((token: string) => sessionStorage.setItem('flux.console.token', token), flux.token);
    const p = await zh.newPage();
    await p.goto(`${flux.url}/console/devices`);
    await p.waitForSelector('.content h1:has-text("设备")');
    assert.equal(await p.textContent('.side a.active'), '设备');
    assert.equal(await p.getAttribute('html', 'lang'), 'zh-CN');
    await zh.close();
  });
});
