/**
 * Every fenced patch (runtime/patches) against the installed aedes, mqtt-packet, Node-RED and Node:
 * what it relies on upstream must still be there. A failure here names the patch and what changed;
 * read that patch's file before upgrading the package. Also: every file of runtime/patches has its
 * check, so a new patch cannot skip this test.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { PATCH_SHAPES } from '../../runtime/patches/index.ts';
import { ROOT } from '../helpers/flux-process.ts';

describe('fenced patches: the upstream shapes they rely on', function () {
  this.timeout(30_000);

  it('lists a shape check for every patch file', () => {
    const files = fs.readdirSync(path.join(ROOT, 'runtime', 'patches')).filter((f) => (f.endsWith('.ts') || f.endsWith('.js')) && f !== 'index.ts');
    assert.deepEqual(Object.keys(PATCH_SHAPES).sort(), files.sort());
  });

  for (const [file, shape] of Object.entries(PATCH_SHAPES)) {
    it(`${file}: upstream still has what the patch changes`, async () => {
      assert.deepEqual(await shape(), [], `runtime/patches/${file} no longer fits its upstream`);
    });
  }
});
