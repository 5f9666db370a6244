/**
 * The console bundle in console/dist is committed (docs/console.md says why): rebuilding console/src
 * must give exactly the committed files, and the JavaScript a first visit loads stays within budget.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { ROOT, tempDir } from '../helpers/flux-process.ts';
import { initialScripts } from './bundle-files.ts';

const DIST = path.join(ROOT, 'console', 'dist');

function files(dir: string, base = dir): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name), base) : [path.relative(base, path.join(dir, e.name))])).sort();
}

describe('the console bundle', function () {
  this.timeout(120_000);

  it('is what `npm run console:build` makes from console/src (the committed files are current)', async function () {
    const out = tempDir('flux-console-build-');
    await promisify(execFile)(path.join(ROOT, 'node_modules', '.bin', 'vite'), ['build', 'console'], { cwd: ROOT, env: { ...process.env, FLUX_CONSOLE_OUT_DIR: out } });
    const built = files(out);
    assert.deepEqual(files(DIST), built, 'console/dist holds other files than a fresh build: run npm run console:build and commit console/dist');
    for (const f of built) assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(DIST, f))), `${f} differs from a fresh build: run npm run console:build`);
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('loads at most 150 KB of gzipped JavaScript on a first visit (video and the script editor load later)', function () {
    const initial = initialScripts(DIST);
    assert.ok(initial.length >= 1);
    assert.ok(!initial.some((f) => /hls|mpegts|code-editor/.test(f)), `lazy chunks in the initial load: ${initial.join(', ')}`);
    const gz = initial.reduce((n, f) => n + gzipSync(fs.readFileSync(path.join(DIST, f)), { level: 9 }).length, 0);
    assert.ok(gz <= 150 * 1024, `initial JS is ${Math.round(gz / 1024)} KB gzipped`);
  });
});
