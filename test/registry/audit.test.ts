/** The audit log repository (registry.audit), one contract suite on SQLite, MariaDB and PostgreSQL. */
import assert from 'node:assert/strict';
import { describeOnDialects, near } from './dialects.ts';

describeOnDialects('audit repository', (suite) => {
  const entry = (action: string, at = new Date(), username: string | null = 'olga') => ({ at, username, role: 'admin', action, target: '/api/x', status: 200, address: '127.0.0.1', detail: null });


  it('appends rows and lists them newest first, every column as written', async function () {
    const at = new Date();
    await suite.registry.audit.append({ ...entry('login', at), detail: 'from the console' });
    await suite.registry.audit.append(entry('user.create', at, null));
    const page = await suite.registry.audit.list({ limit: 10, offset: 0 });
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
    for (let i = 0; i < 6; i++) await suite.registry.audit.append(entry(i % 2 ? 'flows.deploy' : 'login', new Date(), i % 3 ? 'max' : 'olga'));
    assert.equal((await suite.registry.audit.list({ limit: 100, offset: 0, username: 'max' })).total, 4);
    assert.equal((await suite.registry.audit.list({ limit: 100, offset: 0, action: 'login' })).total, 4);
    assert.equal((await suite.registry.audit.list({ limit: 100, offset: 0, username: 'olga', action: 'login' })).total, 2);
    const page = await suite.registry.audit.list({ limit: 3, offset: 2 });
    assert.equal(page.total, 8);
    const all = await suite.registry.audit.list({ limit: 100, offset: 0 });
    assert.deepEqual(page.items.map((r) => r.id), all.items.slice(2, 5).map((r) => r.id));
  });

  it('prunes by age, then keeps only the newest rows', async function () {
    await suite.registry.audit.append(entry('ancient', new Date(Date.now() - 10 * 86_400_000)));
    await suite.registry.audit.prune({ olderThan: new Date(Date.now() - 86_400_000), keep: 1000 });
    const left = await suite.registry.audit.list({ limit: 100, offset: 0 });
    assert.equal(left.total, 8);
    assert.ok(!left.items.some((r) => r.action === 'ancient'));
    await suite.registry.audit.prune({ olderThan: new Date(0), keep: 3 });
    const kept = await suite.registry.audit.list({ limit: 100, offset: 0 });
    assert.equal(kept.total, 3);
    assert.deepEqual(kept.items.map((r) => r.id), left.items.slice(0, 3).map((r) => r.id), 'the newest three');
  });
});
