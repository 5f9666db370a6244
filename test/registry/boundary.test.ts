/**
 * Persistence stays behind the registry's repositories: no file outside runtime/registry/ imports
 * Sequelize or umzug (runtime, nodes, benchmarks and tests alike; tests reach a database with its
 * own driver, test/helpers/databases.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');
const REGISTRY = path.join(ROOT, 'runtime', 'registry') + path.sep;
/** folders that hold no source of this project (dependencies, builds, data) */
const SKIP = new Set(['node_modules', '.git', 'dist', 'target', 'build', 'data', 'coverage']);
const SOURCE = /\.(ts|mts|cts|js|mjs|cjs)$/;
/** files that load the package without touching a database, and why */
const LOADS_WITHOUT_DATABASE = new Map([[path.join('test', 'patches', 'module-deferral.test.ts'), 'checks that startup deferrals keep sequelize\'s validator unloaded until first use']]);
/** static, dynamic, require and bare imports of either module (or a file inside it) */
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|\bimport\s+)['"](sequelize|umzug)(?:\/[^'"]*)?['"]/g;

function sources(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) {
      if (!SKIP.has(e.name)) sources(path.join(dir, e.name), out);
    } else if (SOURCE.test(e.name)) out.push(path.join(dir, e.name));
  }
  return out;
}

function importsOf(file: string): string[] {
  return [...fs.readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => m[1]!);
}

describe('the persistence boundary', function () {
  const files = sources(ROOT);

  it('finds the imports it looks for (runtime/registry/ has them)', function () {
    const inside = files.filter((f) => f.startsWith(REGISTRY) && importsOf(f).length > 0).map((f) => path.relative(ROOT, f));
    assert.ok(inside.includes(path.join('runtime', 'registry', 'connection.ts')), `the scan sees runtime/registry/connection.ts's imports; it saw ${inside.join(', ')}`);
    // built here so that this file's own text holds no import the scan would find
    const [s, u] = ['seq' + 'uelize', 'um' + 'zug'];
    const sample = `import { Op } from '${s}';\nimport type { Model } from "${s}/types";\nconst m = await import( '${u}');\nrequire('${u}');\nimport '${s}';\nconst x = 'from ${s}';`;
    assert.deepEqual([...sample.matchAll(IMPORT)].map((m) => m[1]), [s, s, u, u, s]);
  });

  it('no file outside runtime/registry/ imports Sequelize or umzug', function () {
    assert.ok(files.length > 200, `scanned ${files.length} source files`);
    const offenders = files
      .filter((f) => !f.startsWith(REGISTRY) && !LOADS_WITHOUT_DATABASE.has(path.relative(ROOT, f)) && importsOf(f).length > 0)
      .map((f) => `${path.relative(ROOT, f)} (${importsOf(f).join(', ')})`);
    assert.deepEqual(offenders, [], 'only the registry talks to the database through Sequelize; use its repositories');
  });
});
