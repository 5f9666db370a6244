/** /console serves the built app: hashed assets cached for good, the app's own paths answered with index.html. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type http from 'node:http';
import express from 'express';
import { mountConsole } from '../../runtime/console/index.ts';
import { tempDir } from '../helpers/flux-process.ts';

describe('the console route', function () {
  let server: http.Server;
  let url: string;
  before(async function () {
    const dist = tempDir('flux-console-dist-');
    fs.mkdirSync(path.join(dist, 'assets'));
    fs.writeFileSync(path.join(dist, 'index.html'), '<!doctype html><title>console</title>');
    fs.writeFileSync(path.join(dist, 'assets', 'index-abc.js'), 'console.log(1)');
    const app = express();
    mountConsole(app, { distDir: dist });
    app.use((_req, res) => res.status(404).send('elsewhere'));
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => server.close());

  it('redirects /console to /console/ (relative asset URLs need the slash)', async function () {
    const r = await fetch(`${url}/console`, { redirect: 'manual' });
    assert.equal(r.status, 301);
    assert.equal(r.headers.get('location'), '/console/');
  });

  it('answers the app for its own paths, not cached, with a content security policy', async function () {
    for (const p of ['/console/', '/console/devices/sensor_1', '/console/rules/new?x=1']) {
      const r = await fetch(url + p, { headers: { accept: 'text/html' } });
      assert.equal(r.status, 200, p);
      assert.match(await r.text(), /<title>console/);
      assert.equal(r.headers.get('cache-control'), 'no-cache');
      assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    }
  });

  it('serves hashed assets as immutable and answers 404 for a missing one (never index.html)', async function () {
    const ok = await fetch(`${url}/console/assets/index-abc.js`);
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get('cache-control') ?? '', /immutable/);
    const missing = await fetch(`${url}/console/assets/index-missing.js`);
    assert.equal(missing.status, 404);
    assert.doesNotMatch(await missing.text(), /<title>console/);
  });

  it('does not serve files outside the bundle', async function () {
    for (const p of ['/console/..%2f..%2fetc%2fpasswd', '/console/%2e%2e/%2e%2e/etc/passwd', '/console/assets/..%2f..%2findex.html']) {
      const r = await fetch(url + p, { headers: { accept: 'application/json' } });
      assert.notEqual(r.status, 200, p);
    }
  });
});
