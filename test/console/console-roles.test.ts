/**
 * The console per role, in real Chromium: a viewer signs in with a user name and password and finds
 * no write buttons (and the API refuses their writes with 403); an admin manages users, personal
 * tokens and reads the audit log on the System page.
 */
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/chromium.ts';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { seed, uplink, type Seeded } from './seed.ts';

const ADMIN_PASSWORD = 'console-admin-password';

async function signIn(page: Page, flux: FluxProcess, username: string, password: string): Promise<void> {
  await page.goto(`${flux.url}/console/`);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('.content h1:has-text("Overview")');
}

/**
 * Each page's write controls: a viewer must see none of them; an admin sees them all (so the
 * viewer's check cannot pass on a page that failed to render).
 */
async function writeButtons(page: Page, flux: FluxProcess, data: Seeded, role: 'viewer' | 'admin'): Promise<void> {
  const dev = data.devices[0]!.id;
  const pages: [string, string, string[]][] = [
    ['devices', `[data-testid=device-list] tbody tr:has-text("${dev}")`, ['button:has-text("New device")']],
    [`devices/${dev}`, '.content h1', ['button:has-text("Reset secret")', 'button:has-text("Delete")', '.card:has-text("Send a command") button[type=submit]']],
    ['products', '.content h1:has-text("Products")', ['a:has-text("New product")']],
    ['rules', '.content h1', ['a:has-text("New rule")']],
    ['plugins', '.content h1', ['.card:has-text("Upload a plugin")']],
    ['alarms', '[data-testid=alarm-list] tbody tr:has-text("temperature 49.5")', ['button:has-text("Acknowledge")', 'button:has-text("Clear")']],
  ];
  for (const [path, ready, controls] of pages) {
    await page.goto(`${flux.url}/console/${path}`);
    await page.waitForSelector(ready);
    for (const c of controls) {
      if (role === 'admin') await page.locator(`.content ${c}`).first().waitFor({ timeout: 10_000 });
      else assert.equal(await page.locator(`.content ${c}`).count(), 0, `${path}: a viewer sees no ${c}`);
    }
  }
}

describe('the console per role in Chromium', function () {
  this.timeout(90_000);
  let flux: FluxProcess;
  let browser: Browser;
  let data: Seeded;

  before(async function () {
    this.timeout(120_000);
    [flux, browser] = await Promise.all([startFlux({ FLUX_ADMIN_PASSWORD: ADMIN_PASSWORD }, { timeoutMs: 60_000 }), launchChromium()]);
    data = await seed(flux, { devices: 2, samples: 2 });
    await uplink(flux, data.devices[0]!, { temperature: 49.5, humidity: 30 }); // an alarm to acknowledge
    assert.equal((await flux.api('POST', '/api/users', { username: 'vera', password: 'vera-password', role: 'viewer' })).status, 201);
  });

  after(async function () {
    await browser?.close();
    await flux?.stop();
  });

  it('shows a viewer no write buttons, and the API refuses their writes with 403', async function () {
    const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    await signIn(page, flux, 'vera', 'vera-password');
    assert.equal(await page.textContent('.top .who'), 'vera · viewer');
    assert.equal(await page.locator('nav.side a:has-text("Flow editor")').count(), 0, 'no flow editor link');

    await writeButtons(page, flux, data, 'viewer');
    await page.goto(`${flux.url}/console/system`);
    await page.waitForSelector('.content h1:has-text("System")');
    assert.deepEqual(await page.locator('.tabs a').allTextContents(), ['Settings', 'My password'], 'no users, tokens or audit tabs');

    // The API is what refuses: the viewer's own session token gets 403 on every write.
    const token = await page.evaluate(() => sessionStorage.getItem('flux.console.token') ?? localStorage.getItem('flux.console.token'));
    assert.ok(token);
    const as = (method: string, p: string, body?: unknown) =>
      fetch(`${flux.url}/api${p}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    assert.equal((await as('GET', '/devices')).status, 200);
    for (const [method, p, body] of [
      ['POST', '/devices', { id: 'by_viewer', product_id: data.productId }],
      ['DELETE', `/devices/${data.devices[0]!.id}`],
      ['POST', `/devices/${data.devices[0]!.id}/commands`, { command: 'set_interval' }],
      ['POST', '/products', { key: 'by_viewer', name: 'x' }],
      ['GET', '/users'],
      ['GET', '/audit'],
    ] as const) {
      const r = await as(method, p, body);
      assert.equal(r.status, 403, `${method} ${p}`);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'forbidden');
    }
    assert.equal((await flux.api('GET', `/api/devices/${data.devices[0]!.id}`)).status, 200, 'nothing was deleted');

    // A viewer changes their own password: signed out, then in with the new one.
    await page.goto(`${flux.url}/console/system/password`);
    await page.fill('[data-testid=password] input[name=current]', 'vera-password');
    await page.fill('[data-testid=password] input[name=password]', 'vera-new-password');
    await page.click('[data-testid=password] button[type=submit]');
    await page.waitForSelector('.login input[name=username]');
    assert.equal((await as('GET', '/devices')).status, 401, 'the old session ended');
    await signIn(page, flux, 'vera', 'vera-new-password');
    await ctx.close();
  });

  it('lets an admin create a user, make and revoke a personal token and read the audit log on the System page', async function () {
    const ctx = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    await signIn(page, flux, 'admin', ADMIN_PASSWORD);
    assert.equal(await page.textContent('.top .who'), 'admin · admin');
    assert.equal(await page.locator('nav.side a:has-text("Flow editor")').count(), 1);
    await writeButtons(page, flux, data, 'admin');

    await page.goto(`${flux.url}/console/system/users`);
    const form = page.locator('[data-testid=new-user]');
    await form.locator('input[name=username]').fill('otto');
    await form.locator('input[name=password]').fill('otto-password');
    await form.locator('select[name=role]').selectOption('operator');
    await form.locator('button[type=submit]').click();
    await page.waitForSelector('[data-testid=user-list] tbody tr:has-text("otto")');
    assert.equal((await flux.api('GET', '/api/users/otto')).body.role, 'operator');

    await page.goto(`${flux.url}/console/system/tokens`);
    await page.fill('input[name=name]', 'grafana');
    await page.selectOption('.inline-form select[name=role]', 'viewer');
    await page.click('button:has-text("Create token")');
    await page.waitForSelector('text=New token:');
    const tokens = await flux.api('GET', '/api/tokens');
    const made = tokens.body.items.find((t: { name: string }) => t.name === 'grafana');
    assert.equal(made.role, 'viewer');
    assert.equal(made.username, 'admin');
    page.once('dialog', (d) => void d.accept());
    await page.click('tr:has-text("grafana") button:has-text("Revoke")');
    await page.waitForSelector('tr:has-text("grafana") >> text=revoked');

    await page.goto(`${flux.url}/console/system/audit`);
    await page.waitForSelector('[data-testid=audit] tbody tr:has-text("POST /users")');
    const rows = await page.locator('[data-testid=audit] tbody tr').allTextContents();
    assert.ok(rows.some((r) => r.includes('admin') && r.includes('POST /tokens') && r.includes('201')), rows.slice(0, 5).join('\n'));
    assert.ok(rows.some((r) => r.includes('vera') && r.includes('403')), 'the viewer\'s refused writes are there');
    assert.ok(rows.some((r) => r.includes('vera') && r.includes('login')));
    await ctx.close();
  });
});
