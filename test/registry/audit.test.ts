/** The audit log repository (registry.audit), one contract suite on SQLite, MariaDB and PostgreSQL. */
import assert from 'node:assert/strict';
import type { DbUrl } from '../../settings.ts';
import type { Registry } from '../../runtime/registry/index.ts';
import { DIALECTS, near, openRegistry } from './dialects.ts';

for (const d of DIALECTS) {
  describe(`audit repository on ${d.name}`, function () {
    this.timeout(30_000);
    let db: { db: DbUrl; drop(): Promise<void> };
    let registry: Registry;
    const entry = (action: string, at = new Date(), username: string | null = 'olga') => ({ at, username, role: 'admin', action, target: '/api/x', status: 200, address: '127.0.0.1', detail: null });

    before(async function () {
      db = await d.setup();
      registry = await openRegistry(db.db);
    });

    after(async function () {
      await registry?.stop();
      await db?.drop();
    });

    it('appends rows and lists them newest first, every column as written', async function () {
      const at = new Date();
      await registry.audit.append({ ...entry('login', at), detail: 'from the console' });
      await registry.audit.append(entry('user.create', at, null));
      const page = await registry.audit.list({ limit: 10, offset: 0 });
      assert.equal(page.total, 2);
      const [newest, oldest] = page.items;
      assert.equal(newest!.action, 'user.create');
      assert.equal(newest!.username, null);
      assert.ok(newest!.id > oldest!.id);
      assert.equal(typeof oldest!.id, 'number');
      assert.deepEqual({ ...oldest!, id: 0, at: '' }, { id: 0, at: '', username: 'olga', role: 'admin', action: 'login', target: '/api/x', status: 200, address: '127.0.0.1', detail: 'from the console' });
      assert.ok(near(oldest!.at, at));
    });

    it('filters by user and action, with totals over the filter and pages', async function () {
      for (let i = 0; i < 6; i++) await registry.audit.append(entry(i % 2 ? 'flows.deploy' : 'login', new Date(), i % 3 ? 'max' : 'olga'));
      assert.equal((await registry.audit.list({ limit: 100, offset: 0, username: 'max' })).total, 4);
      assert.equal((await registry.audit.list({ limit: 100, offset: 0, action: 'login' })).total, 4);
      assert.equal((await registry.audit.list({ limit: 100, offset: 0, username: 'olga', action: 'login' })).total, 2);
      const page = await registry.audit.list({ limit: 3, offset: 2 });
      assert.equal(page.total, 8);
      const all = await registry.audit.list({ limit: 100, offset: 0 });
      assert.deepEqual(page.items.map((r) => r.id), all.items.slice(2, 5).map((r) => r.id));
    });

    it('prunes by age, then keeps only the newest rows', async function () {
      await registry.audit.append(entry('ancient', new Date(Date.now() - 10 * 86_400_000)));
      await registry.audit.prune({ olderThan: new Date(Date.now() - 86_400_000), keep: 1000 });
      const left = await registry.audit.list({ limit: 100, offset: 0 });
      assert.equal(left.total, 8);
      assert.ok(!left.items.some((r) => r.action === 'ancient'));
      await registry.audit.prune({ olderThan: new Date(0), keep: 3 });
      const kept = await registry.audit.list({ limit: 100, offset: 0 });
      assert.equal(kept.total, 3);
      assert.deepEqual(kept.items.map((r) => r.id), left.items.slice(0, 3).map((r) => r.id), 'the newest three');
    });
  });
}
