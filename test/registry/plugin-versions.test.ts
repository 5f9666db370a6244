/** The plugin versions repository (registry.pluginVersions), one suite on SQLite, MariaDB and PostgreSQL. */
import assert from 'node:assert/strict';
import { describeOnDialects } from './dialects.ts';

const meta = (n: number) => ({ name: `modbus v${n}`, limits: { deadline_ms: 50, memory_mib: 64 }, exports: ['decode'] });
const row = (id: string, version: number) => ({ id, version, sha256: `${id}-${version}`.padEnd(64, '0'), size: 100 + version, source: 'api' as const, meta: meta(version), file: `/data/plugins/${id}/${version}.wasm`, module: Buffer.from(`bytes of ${id}@${version}`) });

describeOnDialects('plugin versions', (suite) => {
  it('adds versions inactive and lists them oldest first, per plugin and in all', async function () {
    const v2 = await suite.registry.pluginVersions.add(row('modbus', 2));
    await suite.registry.pluginVersions.add(row('modbus', 1));
    await suite.registry.pluginVersions.add(row('acme', 1));
    assert.equal(v2.active, false);
    assert.deepEqual(v2.meta, meta(2));
    assert.match(v2.created_at, /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual((await suite.registry.pluginVersions.of('modbus')).map((v) => v.version), [1, 2]);
    assert.deepEqual((await suite.registry.pluginVersions.all()).map((v) => `${v.id}@${v.version}`), ['acme@1', 'modbus@1', 'modbus@2']);
    assert.deepEqual(await suite.registry.pluginVersions.active(), []);
  });

  it('keeps exactly one version active per plugin, and none after markActive(null)', async function () {
    await suite.registry.pluginVersions.markActive('modbus', 1);
    await suite.registry.pluginVersions.markActive('acme', 1);
    await suite.registry.pluginVersions.markActive('modbus', 2);
    assert.deepEqual((await suite.registry.pluginVersions.active()).map((v) => `${v.id}@${v.version}`), ['acme@1', 'modbus@2']);
    await suite.registry.pluginVersions.markActive('modbus', null);
    assert.deepEqual((await suite.registry.pluginVersions.active()).map((v) => `${v.id}@${v.version}`), ['acme@1']);
  });

  it('keeps each version\'s module bytes, read one version at a time (a cluster\'s other nodes load them: migration 011)', async function () {
    assert.equal((await suite.registry.pluginVersions.moduleOf('modbus', 2))?.toString(), 'bytes of modbus@2');
    assert.equal((await suite.registry.pluginVersions.moduleOf('acme', 1))?.toString(), 'bytes of acme@1');
    assert.equal(await suite.registry.pluginVersions.moduleOf('acme', 9), null);
    assert.equal('module' in ((await suite.registry.pluginVersions.of('modbus'))[0] as object), false);
  });

  it('changes one version\'s meta, and removes every version of one plugin only', async function () {
    await suite.registry.pluginVersions.setMeta('modbus', 2, { ...meta(2), limits: { deadline_ms: 80, memory_mib: 32 } });
    const [v1, v2] = await suite.registry.pluginVersions.of('modbus');
    assert.deepEqual((v2!.meta as { limits: unknown }).limits, { deadline_ms: 80, memory_mib: 32 });
    assert.deepEqual(v1!.meta, meta(1));
    await suite.registry.pluginVersions.remove('modbus');
    assert.deepEqual(await suite.registry.pluginVersions.of('modbus'), []);
    assert.equal((await suite.registry.pluginVersions.of('acme')).length, 1);
  });

  it('refuses a second row for the same version of a plugin', async function () {
    await assert.rejects(suite.registry.pluginVersions.add(row('acme', 1)));
  });
});
