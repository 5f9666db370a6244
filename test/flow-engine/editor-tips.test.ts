/** The editor's tips do not advertise the palette manager FLUX disables (runtime/flow-engine/editor-tips.ts). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { withoutPaletteTips } from '../../runtime/flow-engine/editor-tips.ts';

const require = createRequire(import.meta.url);
const catalogFile = (lang: string) => path.join(path.dirname(require.resolve('@node-red/editor-client/package.json')), 'locales', lang, 'infotips.json');

describe('the editor tip catalog', function () {
  for (const lang of ['en-US', 'zh-CN']) {
    it(`drops the palette-manager tip of Node-RED's ${lang} catalog and renumbers the rest`, function () {
      const upstream = JSON.parse(fs.readFileSync(catalogFile(lang), 'utf8')) as { info: Record<string, string> };
      const tips = Object.keys(upstream.info).filter((k) => /^tip\d+$/.test(k));
      // When this fails, upstream changed the catalog: check whether the filter is still needed.
      assert.ok(tips.some((k) => upstream.info[k]!.includes('core:manage-palette')), 'upstream still has a palette-manager tip');
      const out = withoutPaletteTips(upstream) as { info: Record<string, string> };
      const kept = Object.keys(out.info).filter((k) => /^tip\d+$/.test(k));
      assert.equal(kept.length, tips.length - 1);
      assert.deepEqual(kept, kept.map((_, i) => `tip${i}`), 'numbered without a gap (the editor stops at the first missing one)');
      assert.ok(!Object.values(out.info).some((t) => t.includes('manage-palette')));
      for (const k of Object.keys(upstream.info)) if (!/^tip\d+$/.test(k)) assert.equal(out.info[k], upstream.info[k]);
    });
  }

  it('leaves other catalogs alone', function () {
    assert.deepEqual(withoutPaletteTips({ a: 1 }), { a: 1 });
    assert.equal(withoutPaletteTips(null), null);
  });
});
