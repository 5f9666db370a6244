/** The Node-RED editor in real Chromium: the login takes an admin user (not an operator), and FLUX's nodes are in the palette. */
import assert from 'node:assert/strict';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/chromium.ts';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';

describe('the flow editor in Chromium', function () {
  this.timeout(90_000);
  let flux: FluxProcess;
  let browser: Browser;

  before(async function () {
    flux = await startFlux({ FLUX_ADMIN_PASSWORD: 'browser-admin-password' });
    assert.equal((await flux.api('POST', '/api/users', { username: 'ops', password: 'ops-password', role: 'operator' })).status, 201);
    browser = await launchChromium();
  });

  after(async function () {
    await browser?.close();
    await flux?.stop();
  });

  it('refuses a wrong password and an operator at the login and, for an admin user, shows the FLUX palette', async function () {
    const page = await browser.newPage();
    await page.goto(`${flux.url}/editor/`);
    await page.waitForSelector('#node-dialog-login-fields input[name="username"], #node-dialog-login-fields input#node-dialog-login-username', { timeout: 30_000 });
    const user = page.locator('#node-dialog-login-fields input').first();
    const pass = page.locator('#node-dialog-login-fields input[type="password"]');
    await user.fill('admin');
    await pass.fill('not-the-password-xxxxxxxx');
    await page.click('#node-dialog-login-submit');
    await page.waitForSelector('#node-dialog-login-failed', { state: 'visible', timeout: 10_000 });

    await user.fill('ops');
    await pass.fill('ops-password');
    const refused = page.waitForResponse((r) => r.url().endsWith('/editor/auth/token'));
    await page.click('#node-dialog-login-submit');
    assert.notEqual((await refused).status(), 200, "the operator's login is refused");
    await page.waitForSelector('#node-dialog-login-failed', { state: 'visible', timeout: 10_000 });
    assert.equal(await page.locator('.red-ui-palette-node').count(), 0, 'an operator does not get the editor');

    await user.fill('admin');
    await pass.fill('browser-admin-password');
    await page.click('#node-dialog-login-submit');
    const paletteNode = page.locator('.red-ui-palette-node[data-palette-type="flux device in"]');
    await paletteNode.waitFor({ state: 'attached', timeout: 30_000 });
    assert.equal(await paletteNode.count(), 1);
    await page.screenshot({ path: path.join(flux.dataDir, 'editor.png') });
    await page.close();
  });
});
