/**
 * `npm run console:screenshots`: starts FLUX on free ports with demo data (test/console/seed.ts) and
 * saves a screenshot of every console page in English and Chinese under docs/console/, and of the
 * flow editor's login and rule dialog. A second plugin (test/plugin-compare/fixtures.ts: a candidate
 * version that changes some frames) is replayed and run in shadow mode for the replay and raw frames shots.
 */
import path from 'node:path';
import fs from 'node:fs';
import { startFlux, ROOT } from '../test/helpers/flux-process.ts';
import { seed, uplink } from '../test/console/seed.ts';
import { launchChromium } from '../test/helpers/chromium.ts';
import { digitsPlugin, frame } from '../test/plugin-compare/fixtures.ts';

const PAGES: [string, string][] = [
  ['overview', ''],
  ['products', 'products'],
  ['product', 'products/{product}'],
  ['devices', 'devices'],
  ['device', 'devices/sensor_1'],
  ['plugins', 'plugins'],
  ['plugin', 'plugins/modbus'],
  ['plugin-compare', 'plugins/digits'],
  ['raw-frames', 'devices/meter_1'],
  ['rules', 'rules'],
  ['rule', 'rules/{rule}'],
  ['alarms', 'alarms'],
  ['reports', 'reports'],
  ['video', 'video'],
  ['system', 'system/settings'],
  ['users', 'system/users'],
  ['tokens', 'system/tokens'],
  ['audit', 'system/audit'],
];

const out = path.join(ROOT, 'docs', 'console');

/** The flow editor in the same language: its FLUX login, and the rule node's dialog with a test run. */
async function editorShots(lang: 'en' | 'zh'): Promise<void> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: lang === 'zh' ? 'zh-CN' : 'en-US' });
  const page = await ctx.newPage();
  await page.goto(`${flux.url}/editor/`);
  await page.waitForSelector('.flux-login-title');
  await page.screenshot({ path: path.join(out, lang, 'editor-login.png') });
  console.log(`${lang}/editor-login.png`);
  // the break-glass sign-in: user admin with the admin token
  await page.locator('#node-dialog-login-fields input').first().fill('admin');
  await page.fill('#node-dialog-login-fields input[type=password]', flux.token);
  await page.click('#node-dialog-login-submit');
  await page.locator('.red-ui-palette-node[data-palette-type="flux rule"]').waitFor({ state: 'attached', timeout: 60_000 });
  await page.waitForFunction(() => (globalThis as any).RED.nodes.filterNodes({ type: 'flux rule' }).length > 0);
  await page.evaluate(() => {
    const RED = (globalThis as any).RED;
    RED.editor.edit(RED.nodes.filterNodes({ type: 'flux rule' })[0]);
  });
  await page.waitForSelector('#flux-rule-list a');
  await page.click('#flux-rule-test');
  await page.waitForFunction(() => (document.getElementById('flux-rule-test-result')?.textContent ?? '').length > 12).catch(() => undefined);
  await page.waitForTimeout(400);
  await page.screenshot({ path: path.join(out, lang, 'editor-rule.png') });
  console.log(`${lang}/editor-rule.png`);
  await ctx.close();
}
/** The digits plugin, its version 2 stored beside it, frames of meter_1 replayed through it, and a shadow running. */
async function compareScene(): Promise<void> {
  const must = async (r: Promise<{ status: number; body: any }>) => {
    const x = await r;
    if (x.status >= 300) throw new Error(`${x.status} ${JSON.stringify(x.body)}`);
    return x.body;
  };
  const wasm = { 'content-type': 'application/wasm' };
  await must(flux.api('PUT', '/api/plugins/digits', digitsPlugin(1), wasm));
  await must(flux.api('POST', '/api/products', { key: 'meter', name: 'Meter', protocol_plugin_id: 'digits', metadata: { properties: [{ id: 'n', type: 'int' }] } }));
  const dev = await must(flux.api('POST', '/api/devices', { id: 'meter_1', product_id: 'meter', name: 'Meter 1' }));
  const send = (d: number) => must(flux.api('POST', '/api/devices/meter_1/uplink', frame(d, 'meter_1'), { 'content-type': 'application/octet-stream', 'x-device-secret': dev.secret }));
  const from = Date.now() - 1000;
  for (const d of [10001, 90002, 10003, 10004, 80005, 10006, 90007, 10008, 10009, 10010, 10011, 90012]) await send(d);
  await must(flux.api('PUT', '/api/plugins/digits?activate=false', digitsPlugin(2), wasm));
  await must(flux.api('POST', '/api/plugins/digits/replay', { version: 2, from, to: Date.now() }));
  await must(flux.api('POST', '/api/plugins/digits/shadow', { version: 2, sample: 1 }));
  for (const d of [10021, 90022, 10023]) await send(d);
}

const flux = await startFlux();
const browser = await launchChromium();
try {
  const s = await seed(flux, { samples: 30, alarm: true });
  await compareScene();
  for (const lang of ['en', 'zh'] as const) {
    fs.mkdirSync(path.join(out, lang), { recursive: true });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: lang === 'zh' ? 'zh-CN' : 'en-US' });
    await ctx.addInitScript((token: string) => sessionStorage.setItem('flux.console.token', token), flux.token);
    const page = await ctx.newPage();
    for (const [name, p] of PAGES) {
      await page.goto(`${flux.url}/console/${p.replace('{product}', s.productId).replace('{rule}', s.ruleId)}`);
      await page.waitForLoadState('networkidle').catch(() => undefined);
      if (name === 'device') {
        // a few seconds of live telemetry for the live chart
        const dev = s.devices[0]!;
        for (let i = 0; i < 30; i++) {
          await uplink(flux, dev, { temperature: 40 + 4 * Math.sin(i / 4), humidity: 35 + 3 * Math.cos(i / 5) });
          await page.waitForTimeout(100);
        }
      }
      await page.waitForTimeout(name === 'overview' ? 2500 : 600);
      if (name === 'rule') await page.click('text=/Run test|运行测试/').then(() => page.waitForSelector('[data-testid=test-result]')).catch(() => undefined);
      if (name === 'raw-frames') await page.locator('.card:has([data-testid=raw-frames])').screenshot({ path: path.join(out, lang, `${name}.png`) });
      else await page.screenshot({ path: path.join(out, lang, `${name}.png`), fullPage: name !== 'device' });
      console.log(`${lang}/${name}.png`);
    }
    await ctx.close();
    const anonymous = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: lang === 'zh' ? 'zh-CN' : 'en-US' });
    const login = await anonymous.newPage();
    await login.goto(`${flux.url}/console/`);
    await login.waitForSelector('.login form');
    await login.screenshot({ path: path.join(out, lang, 'login.png') });
    await anonymous.close();
    await editorShots(lang);
  }
} finally {
  await browser.close();
  await flux.stop();
}
