/**
 * Flows that travel, in the editor in real Chromium: a rule's print/log lines in the debug sidebar,
 * "1 trigger" in the rule dialog, "Import copy" of the default flow not processing uplinks twice
 * (the copy's `flux device in` turns red), and a flow naming a plugin this instance lacks: warned at
 * import (plugin and version), marked invalid so the deploy asks, and red on the node after deploy.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium.ts';
import { ROOT, startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';

declare const RED: any;

/** The first admin's password (FLUX_ADMIN_PASSWORD): the editor takes admin users. */
const ADMIN_PASSWORD = 'editor-flows-admin-password';

async function login(page: Page, flux: FluxProcess): Promise<void> {
  await page.goto(`${flux.url}/editor/`, { waitUntil: 'domcontentloaded', timeout: 60_000 });
  await page.waitForSelector('#node-dialog-login-fields input[type=password]', { timeout: 60_000 });
  await page.locator('#node-dialog-login-fields input').first().fill('admin');
  await page.fill('#node-dialog-login-fields input[type=password]', ADMIN_PASSWORD);
  await page.click('#node-dialog-login-submit');
  await page.locator('.red-ui-palette-node[data-palette-type="flux rule"]').waitFor({ state: 'attached', timeout: 60_000 });
  await page.waitForFunction(() => RED.nodes.filterNodes({ type: 'flux device in' }).length > 0, undefined, { timeout: 60_000 });
}

/** Clicks Deploy, confirming the "not properly configured" question when it comes. */
async function deploy(page: Page, expectQuestion: boolean): Promise<string> {
  // the Deploy button's action (a click can land on the closing edit tray's shade)
  await page.evaluate(() => RED.actions.invoke('core:deploy-flows'));
  let question = '';
  if (expectQuestion) {
    const confirm = page.locator('#red-ui-deploy-dialog-confirm-deploy-deploy');
    await confirm.waitFor({ timeout: 10_000 });
    question = (await page.locator('.red-ui-notification', { has: confirm }).textContent()) ?? '';
    await confirm.click();
  }
  await page.waitForFunction(() => !RED.nodes.dirty(), undefined, { timeout: 30_000 });
  return question;
}

const statusOf = (page: Page, id: string) => page.evaluate((i) => RED.nodes.node(i)?.status ?? null, id);

describe('flows in the editor: debug lines, a copied default flow, a missing plugin', function () {
  this.timeout(180_000);
  let flux: FluxProcess;
  let browser: Browser;
  let page: Page;
  let secret: string;
  const frames = tempDir('flux-frames-');

  const publish = (temperature: number) => {
    const file = path.join(frames, `${temperature}.json`);
    fs.writeFileSync(file, JSON.stringify({ values: { temperature } }));
    execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(flux.mqtt), '-i', 'room_1', '-u', 'room_1', '-P', secret, '-q', '1', '-t', '/room/room_1/properties/report', '-f', file], { timeout: 10_000, stdio: 'pipe' });
  };

  before(async function () {
    this.timeout(150_000);
    [flux, browser] = await Promise.all([startFlux({ FLUX_PLUGINS_DIR: tempDir('flux-plugins-'), FLUX_ADMIN_PASSWORD: ADMIN_PASSWORD }), launchChromium()]);
    const product = await flux.api('POST', '/api/products', { key: 'room', name: 'Room' });
    assert.equal(product.status, 201);
    const device = await flux.api('POST', '/api/devices', { id: 'room_1', product_id: product.body.id });
    secret = device.body.secret;
    const rule = await flux.api('POST', '/api/rules', { name: 'too hot', action_type: 'flow', trigger_script: 'print("t=" + msg.values.temperature); log_info("hot"); return msg.values.temperature > 45;' });
    assert.equal(rule.status, 201, JSON.stringify(rule.body));
    const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1400, height: 900 } });
    page = await ctx.newPage();
    await login(page, flux);
  });

  after(async () => {
    await browser?.close();
    await flux?.stop();
  });

  it("shows a rule's print and log_info lines in the debug sidebar, from the rule node, and '1 trigger' in its dialog", async () => {
    await page.evaluate(() => RED.sidebar.show('debug'));
    publish(50);
    await page.waitForFunction(() => /t=50[\s\S]*\[info\] hot/.test(document.querySelector('.red-ui-debug-content')?.textContent ?? ''), undefined, { timeout: 20_000 });
    const text = (await page.textContent('.red-ui-debug-content')) ?? '';
    assert.match(text, /\[info\] hot/);
    assert.match(text, /too hot/, 'the rule name is the topic');
    assert.match(text, /node: rules/, 'from the rule node of the default flow');
    await page.evaluate(() => RED.editor.edit(RED.nodes.filterNodes({ type: 'flux rule' })[0]));
    await page.waitForFunction(() => /trigger/.test(document.getElementById('flux-rule-list')?.textContent ?? ''));
    const row = await page.$$eval('#flux-rule-list span', (els) => els.map((e) => e.textContent));
    assert.ok(row.includes('1 trigger'), row.join(' | '));
    assert.equal(await page.isChecked('#node-input-sidebar'), true, 'the default flow\'s rule node (no sidebar property) shows its lines');
    await page.click('#node-dialog-cancel');
    await page.waitForSelector('#dialog-form', { state: 'detached' });
  });

  it('"Import copy" of the default flow: the copy\'s device in refuses to run (red status), so an uplink is ruled once', async () => {
    const flow = JSON.parse(fs.readFileSync(path.join(ROOT, 'flows', 'default.json'), 'utf8'));
    await page.evaluate((f) => RED.view.importNodes(f, { generateIds: true, addFlow: true }), flow);
    await deploy(page, false);
    const copyIn = await page.evaluate(() => RED.nodes.filterNodes({ type: 'flux device in' }).find((n: any) => n.id !== 'flux-in').id);
    await page.waitForFunction((id) => RED.nodes.node(id)?.status?.fill === 'red', copyIn, { timeout: 20_000 });
    assert.match((await statusOf(page, copyIn)).text, /flux-in/, 'names the node that has the filter');
    const copyRule = await page.evaluate(() => RED.nodes.filterNodes({ type: 'flux rule' }).find((n: any) => n.id !== 'flux-rules').id);
    publish(51);
    await page.waitForFunction(() => /triggered/.test(RED.nodes.node('flux-rules')?.status?.text ?? ''), undefined, { timeout: 20_000 });
    await page.waitForTimeout(1500);
    assert.match((await statusOf(page, 'flux-rules')).text, /^1\/1 triggered$/, 'the redeploy restarted the counter: one uplink, one run');
    assert.doesNotMatch(JSON.stringify(await statusOf(page, copyRule)), /triggered/, 'the copy never ran');
  });

  it('warns at import naming a missing plugin and version, asks at deploy, and shows a red status on the node', async () => {
    const node = { id: 'ghost-decode', type: 'flux decode', name: '', plugin: 'ghost', pluginVersion: '3', pluginSha256: 'ab'.repeat(32), x: 300, y: 400, wires: [] };
    await page.evaluate((n) => {
      // placed where it says (not attached to the mouse); the drop that would follow marks the flows changed
      RED.view.importNodes([{ ...n, z: RED.workspaces.active() }], { touchImport: true });
      RED.nodes.dirty(true);
    }, node);
    const warning = page.locator('.red-ui-notification', { hasText: 'ghost v3' });
    await warning.waitFor({ timeout: 10_000 });
    assert.match((await warning.textContent()) ?? '', /Missing plugins/);
    assert.equal(await page.evaluate(() => RED.nodes.node('ghost-decode').valid), false);
    const question = await deploy(page, true);
    assert.match(question, /ghost/);
    await page.waitForFunction(() => RED.nodes.node('ghost-decode')?.status?.fill === 'red', undefined, { timeout: 20_000 });
    assert.match((await statusOf(page, 'ghost-decode')).text, /ghost v3 not installed/);
    // the error reaches the debug sidebar on its own comms message, possibly after the status
    const missing = /flux decode: plugin 'ghost' v3 \(sha256 abababababab…\) is not installed/;
    await page
      .waitForFunction((src) => new RegExp(src).test(document.querySelector('.red-ui-debug-content')?.textContent ?? ''), missing.source, { timeout: 20_000 })
      .catch(() => undefined);
    assert.match((await page.textContent('.red-ui-debug-content')) ?? '', missing);
  });

  it('records the chosen plugin build in the node, so an export names it', async () => {
    const wasm = fs.readFileSync(path.join(ROOT, 'plugins', 'dist', 'modbus.wasm'));
    const put = await flux.api('PUT', '/api/plugins/modbus', wasm, { 'content-type': 'application/wasm' });
    assert.equal(put.status, 201);
    await page.evaluate(() => RED.editor.edit(RED.nodes.node('ghost-decode')));
    await page.waitForSelector('#node-input-plugin option[value="modbus"]', { state: 'attached' });
    await page.selectOption('#node-input-plugin', 'modbus');
    await page.click('#node-dialog-ok');
    await page.waitForSelector('#dialog-form', { state: 'detached' });
    const saved = await page.evaluate(() => {
      const n = RED.nodes.node('ghost-decode');
      return { plugin: n.plugin, version: n.pluginVersion, sha: n.pluginSha256, valid: n.valid };
    });
    assert.deepEqual(saved, { plugin: 'modbus', version: '1', sha: put.body.sha256, valid: true });
    await deploy(page, false);
    const exported = await flux.api('GET', '/api/project/export');
    const mine = exported.body.flows.find((n: any) => n.id === 'ghost-decode');
    assert.equal(mine.pluginSha256, put.body.sha256);
    assert.equal(exported.body.plugins[0].sha256, put.body.sha256);
  });
});
