/** The flows a cluster shares (registry.sharedFlows, migration 012), one suite on SQLite, MariaDB and PostgreSQL. */
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

for (const d of dialects) {
  describe(`shared flows on ${d.name}`, function () {
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

    it('holds none at first; of two first writes only the first is kept; a deploy replaces them', async function () {
      assert.equal(await registry.sharedFlows.read(), null);
      assert.equal(await registry.sharedFlows.writeFirst('[{"id":"a"}]', 'rev-a'), true);
      assert.equal(await registry.sharedFlows.writeFirst('[{"id":"b"}]', 'rev-b'), false);
      assert.deepEqual(await registry.sharedFlows.read(), { json: '[{"id":"a"}]', rev: 'rev-a' });
      // a flow JSON larger than 64 KiB (a TEXT column on MariaDB) is kept whole
      const big = JSON.stringify([{ id: 'big', func: 'x'.repeat(200_000) }]);
      await registry.sharedFlows.write(big, 'rev-big');
      assert.deepEqual(await registry.sharedFlows.read(), { json: big, rev: 'rev-big' });
    });

    it('holds the encrypted credentials beside the flows (migration 013), none until stored', async function () {
      assert.equal(await registry.sharedFlows.readCredentials(), null);
      const creds = JSON.stringify({ $: 'a1b2'.repeat(40_000) });
      await registry.sharedFlows.writeCredentials(creds);
      assert.equal(await registry.sharedFlows.readCredentials(), creds);
      assert.equal((await registry.sharedFlows.read())?.rev, 'rev-big');
    });
  });
}
