/** The plugin versions repository (registry.pluginVersions), one suite on SQLite, MariaDB and PostgreSQL. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { createRegistry, type Registry } from '../../runtime/registry/index.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { parseDbUrl } from '../../settings.ts';
import { createTestDatabase } from '../helpers/databases.ts';
import { tempDir } from '../helpers/flux-process.ts';

const log = createLogger({ level: 'silent' });

const dialects: { name: string; setup(): Promise<{ url: string; drop(): Promise<void> }> }[] = [
  { name: 'SQLite (node:sqlite)', setup: async () => ({ url: `sqlite:${path.join(tempDir(), 'flux.db')}`, drop: async () => {} }) },
  { name: 'MariaDB (mysql2)', setup: () => createTestDatabase('mysql') },
  { name: 'PostgreSQL (pg)', setup: () => createTestDatabase('postgres') },
];

const meta = (n: number) => ({ name: `modbus v${n}`, limits: { deadline_ms: 50, memory_mib: 64 }, exports: ['decode'] });
const row = (id: string, version: number) => ({ id, version, sha256: `${id}-${version}`.padEnd(64, '0'), size: 100 + version, source: 'api' as const, meta: meta(version), file: `/data/plugins/${id}/${version}.wasm`, module: Buffer.from(`bytes of ${id}@${version}`) });

for (const d of dialects) {
  describe(`plugin versions on ${d.name}`, function () {
    this.timeout(30_000);
    let db: { url: string; drop(): Promise<void> };
    let registry: Registry;

    before(async function () {
      db = await d.setup();
      registry = createRegistry({ db: parseDbUrl('FLUX_DB_URL', db.url, tempDir(), 'flux.db', false), log });
      await registry.start();
    });

    after(async function () {
      await registry?.stop();
      await db?.drop();
    });

    it('adds versions inactive and lists them oldest first, per plugin and in all', async function () {
      const v2 = await registry.pluginVersions.add(row('modbus', 2));
      await registry.pluginVersions.add(row('modbus', 1));
      await registry.pluginVersions.add(row('acme', 1));
      assert.equal(v2.active, false);
      assert.deepEqual(v2.meta, meta(2));
      assert.match(v2.created_at, /^\d{4}-\d\d-\d\dT/);
      assert.deepEqual((await registry.pluginVersions.of('modbus')).map((v) => v.version), [1, 2]);
      assert.deepEqual((await registry.pluginVersions.all()).map((v) => `${v.id}@${v.version}`), ['acme@1', 'modbus@1', 'modbus@2']);
      assert.deepEqual(await registry.pluginVersions.active(), []);
    });

    it('keeps exactly one version active per plugin, and none after markActive(null)', async function () {
      await registry.pluginVersions.markActive('modbus', 1);
      await registry.pluginVersions.markActive('acme', 1);
      await registry.pluginVersions.markActive('modbus', 2);
      assert.deepEqual((await registry.pluginVersions.active()).map((v) => `${v.id}@${v.version}`), ['acme@1', 'modbus@2']);
      await registry.pluginVersions.markActive('modbus', null);
      assert.deepEqual((await registry.pluginVersions.active()).map((v) => `${v.id}@${v.version}`), ['acme@1']);
    });

    it('keeps each version\'s module bytes, read one version at a time (a cluster\'s other nodes load them: migration 011)', async function () {
      assert.equal((await registry.pluginVersions.moduleOf('modbus', 2))?.toString(), 'bytes of modbus@2');
      assert.equal((await registry.pluginVersions.moduleOf('acme', 1))?.toString(), 'bytes of acme@1');
      assert.equal(await registry.pluginVersions.moduleOf('acme', 9), null);
      assert.equal('module' in ((await registry.pluginVersions.of('modbus'))[0] as object), false);
    });

    it('changes one version\'s meta, and removes every version of one plugin only', async function () {
      await registry.pluginVersions.setMeta('modbus', 2, { ...meta(2), limits: { deadline_ms: 80, memory_mib: 32 } });
      const [v1, v2] = await registry.pluginVersions.of('modbus');
      assert.deepEqual((v2!.meta as { limits: unknown }).limits, { deadline_ms: 80, memory_mib: 32 });
      assert.deepEqual(v1!.meta, meta(1));
      await registry.pluginVersions.remove('modbus');
      assert.deepEqual(await registry.pluginVersions.of('modbus'), []);
      assert.equal((await registry.pluginVersions.of('acme')).length, 1);
    });

    it('refuses a second row for the same version of a plugin', async function () {
      await assert.rejects(registry.pluginVersions.add(row('acme', 1)));
    });
  });
}
