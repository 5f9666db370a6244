/** The console speaks English and Simplified Chinese: every text it passes to t() has a Chinese form. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/flux-process.ts';

const SRC = path.join(ROOT, 'console', 'src');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [path.join(dir, e.name)] : []));
}

/** Texts translated from data rather than literals (states, levels, roles, actions, navigation, ranges). */
const FROM_DATA = [
  'online', 'offline', 'disabled', 'active', 'acknowledged', 'cleared', 'raised', 'repeated', 'info', 'warning', 'critical',
  'alarm', 'command', 'webhook', 'flow', 'admin', 'operator', 'viewer', 'ok', 'degraded', 'live', 'retrying', 'starting', 'unknown',
  'Overview', 'Products', 'Devices', 'Plugins', 'Rules and scenes', 'Alarm center', 'Reports', 'Video wall', 'System',
  'Properties', 'Events', 'Commands', 'last hour', 'last 6 hours', 'last 24 hours', 'last 7 days', 'last 30 days',
  'Users and roles', 'API tokens', 'Audit log', 'Settings', 'came online', 'went offline',
  'running', 'done', 'cancelled', 'failed', 'last 15 minutes',
];

describe('the console in Chinese', function () {
  it('has a zh-CN text for every English text in the code', async function () {
    const { zh } = (await import(path.join(SRC, 'zh.ts'))) as { zh: Record<string, string> };
    const literals = new Set<string>();
    for (const f of sources(SRC)) {
      for (const m of fs.readFileSync(f, 'utf8').matchAll(/\bt\('((?:[^'\\]|\\.)*)'/g)) literals.add(m[1]!.replace(/\\'/g, "'"));
    }
    assert.ok(literals.size > 150, `found only ${literals.size} texts: is the scan broken?`);
    const missing = [...literals, ...FROM_DATA].filter((s) => !(s in zh));
    assert.deepEqual(missing, [], 'texts without a Chinese translation (add them to console/src/zh.ts)');
    const untranslated = Object.entries(zh).filter(([en, cn]) => en === cn && /[a-z]{4}/i.test(en) && en !== 'Webhook');
    assert.deepEqual(untranslated, []);
  });

  it('keeps every {placeholder} of the English text in the Chinese one', async function () {
    const { zh } = (await import(path.join(SRC, 'zh.ts'))) as { zh: Record<string, string> };
    for (const [en, cn] of Object.entries(zh)) {
      const names = (s: string) => [...s.matchAll(/(?<!\{)\{(\w+)\}(?!\})/g)].map((m) => m[1]).sort();
      assert.deepEqual(names(cn), names(en), `placeholders of ${JSON.stringify(en)}`);
    }
  });
});
