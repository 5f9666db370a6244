/**
 * The console shows a polled Modbus device in real Chromium: where FLUX polls it, whether it answers
 * (and why not, once its slave stops answering), and its product's register map, from the registry
 * and GET /api/modbus.
 */
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium.ts';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { startSlave, type TestSlave } from '../modbus/slave.ts';

describe('the console shows Modbus polling in Chromium', function () {
  this.timeout(90_000);
  let flux: FluxProcess;
  let browser: Browser;
  let slave: TestSlave;
  let page: Page;

  before(async function () {
    slave = await startSlave('tcp');
    [flux, browser] = await Promise.all([startFlux({ FLUX_MODBUS_SYNC_MS: '200' }, { timeoutMs: 60_000 }), launchChromium()]);
    page = await (await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } })).newPage();
  });
  after(async function () {
    await browser?.close();
    await flux?.stop();
    await slave?.close();
  });

  it('the device page shows the endpoint, the unit answering, the register map, and the reason it stopped', async function () {
    slave.unit(1).holding[0] = 453;
    const product = await flux.api('POST', '/api/products', {
      key: 'boiler', name: 'Boiler',
      transport: { modbus: { interval_ms: 300, timeout_ms: 300, offline_after: 2, registers: [
        { property: 'temperature', function: 3, address: 0, type: 'int16', scale: 0.1 },
        { property: 'setpoint', function: 3, address: 1, type: 'int16', scale: 0.1 },
        { property: 'limit', function: 3, address: 10, type: 'float32', word_order: 'little' },
      ] } },
    });
    assert.equal(product.status, 201, JSON.stringify(product.body));
    const device = await flux.api('POST', '/api/devices', { id: 'boiler_1', product_id: 'boiler', transport: { modbus: { host: '127.0.0.1', port: slave.port, unit: 1 } } });
    assert.equal(device.status, 201, JSON.stringify(device.body));

    await page.goto(`${flux.url}/console/`);
    await page.click('text=Sign in with an API token instead');
    await page.fill('input[name=token]', flux.token);
    await page.click('button[type=submit]');
    await page.waitForSelector('.content h1');
    await page.goto(`${flux.url}/console/devices/boiler_1`);
    const card = page.locator('#modbus');
    await card.locator('[data-testid=modbus-status] .status-online').waitFor({ timeout: 20_000 });
    const facts = await card.locator('[data-testid=modbus-status]').innerText();
    assert.match(facts, new RegExp(`tcp://127\\.0\\.0\\.1:${slave.port}\\s+unit 1`));
    assert.match(facts, /every 300 ms, timeout 300 ms/);
    const rows = await card.locator('[data-testid=modbus-registers] tbody tr').allInnerTexts();
    assert.deepEqual(rows.map((r) => r.split('\t').map((c) => c.trim())), [
      ['temperature', 'holding register 0', 'int16', '0.1'],
      ['setpoint', 'holding register 1', 'int16', '0.1'],
      ['limit', 'holding register 10', 'float32 CDAB', '1'],
    ]);

    // the slave stops answering unit 1: the card says so, with the reason (it refreshes every 5 s)
    slave.muted.add(1);
    await card.locator('[data-testid=modbus-status] .status-offline').waitFor({ timeout: 30_000 });
    assert.match(await card.locator('[data-testid=modbus-status]').innerText(), /Last error\s+timeout: unit 1 did not answer within 300 ms/);
  });
});
