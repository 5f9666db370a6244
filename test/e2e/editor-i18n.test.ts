/**
 * The flow editor in Chromium, as FLUX's: the login dialog (FLUX title, hint and logo, no empty
 * title bar), the rule node's registry list with console links and a test button, the decode
 * node's file picker, and the FLUX nodes in Chinese for a zh-CN browser.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium.ts';
import { ROOT, startFlux, type FluxProcess } from '../helpers/flux-process.ts';

/** The first admin's password (FLUX_ADMIN_PASSWORD): the editor takes admin users. */
const ADMIN_PASSWORD = 'editor-i18n-admin-password';

async function login(page: Page, flux: FluxProcess): Promise<void> {
  await page.goto(`${flux.url}/editor/`, { waitUntil: 'domcontentloaded', timeout: 60_000 });
  await page.waitForSelector('#node-dialog-login-fields input[type=password]', { timeout: 60_000 });
  await page.locator('#node-dialog-login-fields input').first().fill('admin');
  await page.fill('#node-dialog-login-fields input[type=password]', ADMIN_PASSWORD);
  await page.click('#node-dialog-login-submit');
  await page.locator('.red-ui-palette-node[data-palette-type="flux rule"]').waitFor({ state: 'attached', timeout: 60_000 });
}

/** Opens the edit dialog of the first node of a type in the default flow. */
async function editNode(page: Page, type: string): Promise<void> {
  // the palette is ready before the flows have loaded into the editor; a loaded machine shows the gap
  await page.waitForFunction((t) => ((globalThis as any).RED?.nodes?.filterNodes({ type: t }) ?? []).length > 0, type, { timeout: 60_000 });
  await page.evaluate((t) => {
    const RED = (globalThis as any).RED;
    RED.editor.edit(RED.nodes.filterNodes({ type: t })[0]);
  }, type);
  await page.waitForSelector('#dialog-form', { state: 'visible', timeout: 60_000 });
}

describe('the flow editor as FLUX made it, in English and Chinese', function () {
  this.timeout(180_000);
  let flux: FluxProcess;
  let browser: Browser;
  let ruleId: string;

  before(async function () {
    this.timeout(150_000);
    [flux, browser] = await Promise.all([startFlux({ FLUX_ADMIN_PASSWORD: ADMIN_PASSWORD }, { timeoutMs: 60_000 }), launchChromium()]);
    const rule = await flux.api('POST', '/api/rules', { name: 'too hot', action_type: 'flow', trigger_script: 'log_info("t=" + msg.values.temperature); return msg.values.temperature > 45;' });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
    ruleId = rule.body.id;
  });

  after(async function () {
    await browser?.close();
    await flux?.stop();
  });

  it("shows FLUX's login: title, hint and logo, and no empty title bar", async function () {
    const ctx = await browser.newContext({ locale: 'en-US' });
    const page = await ctx.newPage();
    await page.goto(`${flux.url}/editor/`, { waitUntil: 'domcontentloaded', timeout: 60_000 });
    await page.waitForSelector('.flux-login-title', { timeout: 60_000 });
    assert.equal(await page.textContent('.flux-login-title'), 'FLUX IOT · flow editor');
    assert.match((await page.textContent('.flux-login-hint')) ?? '', /^Sign in with a FLUX admin user\. Break-glass: user name admin with the admin token as password/);
    assert.match((await page.getAttribute('#node-dialog-login-image', 'src')) ?? '', /theme\/login/);
    assert.equal(await page.locator('.ui-dialog:has(#node-dialog-login) .ui-dialog-titlebar').isVisible(), false);
    assert.equal(await page.title(), 'FLUX IOT · flows');
    await ctx.close();
  });

  it('lists the registry rules in the rule dialog with links to the console, and test-runs one', async function () {
    const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1400, height: 900 } });
    const page = await ctx.newPage();
    await login(page, flux);
    await editNode(page, 'flux rule');
    const link = page.locator('#flux-rule-list a', { hasText: 'edit in the console' });
    await link.waitFor();
    assert.equal(await link.getAttribute('href'), `../console/rules/${ruleId}`);
    assert.match((await page.textContent('#flux-rule-list')) ?? '', /too hot/);
    // the Run select shows its whole text
    const fits = await page.evaluate(() => {
      const sel = document.getElementById('node-input-mode') as HTMLSelectElement;
      const probe = document.createElement('span');
      probe.style.font = getComputedStyle(sel).font;
      probe.style.whiteSpace = 'pre';
      probe.textContent = sel.options[sel.selectedIndex]!.text;
      document.body.append(probe);
      const w = probe.getBoundingClientRect().width;
      probe.remove();
      return { text: w, box: sel.clientWidth };
    });
    assert.ok(fits.text + 24 <= fits.box, `the selected option (${fits.text}px) fits the select (${fits.box}px)`);
    await page.fill('#flux-rule-test-values', '{"temperature": 50}');
    await page.click('#flux-rule-test');
    await page.waitForFunction(() => /triggered/.test(document.getElementById('flux-rule-test-result')!.textContent ?? ''));
    const result = (await page.textContent('#flux-rule-test-result')) ?? '';
    assert.match(result, /^triggered/);
    assert.match(result, /\[info\] t=50/);
    await ctx.close();
  });

  it('uploads a plugin chosen with the file picker beside the drop zone', async function () {
    const ctx = await browser.newContext({ locale: 'en-US' });
    const page = await ctx.newPage();
    await login(page, flux);
    await editNode(page, 'flux decode');
    const file = path.join(flux.dataDir, 'picked.wasm');
    fs.copyFileSync(path.join(ROOT, 'plugins', 'dist', 'modbus.wasm'), file);
    await page.setInputFiles('#flux-plugin-file', file);
    await page.waitForFunction(() => /installed picked v1/.test(document.getElementById('flux-plugin-drop-status')!.textContent ?? ''));
    assert.equal((await flux.api('GET', '/api/plugins/picked')).status, 200);
    await ctx.close();
  });

  it('shows the FLUX nodes in Chinese for a zh-CN browser: palette, dialog and help, with no English left', async function () {
    const ctx = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1400, height: 900 } });
    const page = await ctx.newPage();
    await login(page, flux);
    assert.equal((await page.textContent('.red-ui-palette-node[data-palette-type="flux rule"] .red-ui-palette-label'))?.trim(), '规则');
    await editNode(page, 'flux rule');
    await page.locator('#flux-rule-list a').first().waitFor();
    const labels = await page.$$eval('#dialog-form label, #dialog-form option, #dialog-form button, #dialog-form .form-tips', (els) => els.map((e) => (e as HTMLElement).innerText.trim()).filter(Boolean));
    assert.ok(labels.includes('名称') && labels.includes('运行') && labels.includes('规则库中的规则'), labels.join(' | '));
    const english = labels.filter((l) => /[A-Za-z]{3}/.test(l.replace(/\benv\b|FLUX|JSON/g, '')));
    assert.deepEqual(english, [], 'no English words in the Chinese dialog');
    assert.match((await page.textContent('#flux-rule-list')) ?? '', /在控制台中编辑/);
    const help = await page.evaluate(() => (globalThis as any).RED.nodes.getType('flux rule') && $('script[data-help-name="flux rule"]').html());
    assert.match(String(help), /规则脚本/);
    await ctx.close();
  });
});

declare const $: (sel: string) => { html(): string };
