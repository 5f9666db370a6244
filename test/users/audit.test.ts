/** The audit log stays bounded: at most `maxRows` rows and none older than `maxAgeMs`, the oldest going first. */
import assert from 'node:assert/strict';
import { createRegistry, type Registry } from '../../runtime/registry/index.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { createUsers } from '../../runtime/users/index.ts';
import { loadSettings } from '../../settings.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';

describe('the audit log bounds', function () {
  let registry: Registry;

  beforeEach(async function () {
    registry = createRegistry({ db: loadSettings({ FLUX_DATA_DIR: tempDir() }).db, log: createLogger({ level: 'silent' }) });
    await registry.start();
  });

  afterEach(async function () {
    await registry.stop();
  });

  it('keeps the newest rows up to its size', async function () {
    const users = createUsers({ store: registry, adminToken: TEST_TOKEN, adminPassword: 'audit-admin-password', sessionTtlMs: 60_000, log: createLogger({ level: 'silent' }), audit: { maxRows: 5 } });
    await users.start();
    for (let i = 0; i < 12; i++) users.audit.record({ username: 'u', action: `step ${i}`, status: 200 });
    await users.audit.flush();
    await users.audit.prune();
    const page = await users.audit.list({ limit: 100, offset: 0 });
    assert.equal(page.total, 5);
    assert.deepEqual(page.items.map((a) => a.action), ['step 11', 'step 10', 'step 9', 'step 8', 'step 7']);
    await users.stop();
  });

  it('drops rows older than its age, at start too', async function () {
    const users = createUsers({ store: registry, adminToken: TEST_TOKEN, adminPassword: 'audit-admin-password', sessionTtlMs: 60_000, log: createLogger({ level: 'silent' }), audit: { maxAgeMs: 200 } });
    await users.start();
    users.audit.record({ username: 'u', action: 'old', status: 200 });
    await users.audit.flush();
    await new Promise((r) => setTimeout(r, 300));
    users.audit.record({ username: 'u', action: 'new', status: 200 });
    await users.audit.flush();
    await users.audit.prune();
    assert.deepEqual((await users.audit.list({ limit: 10, offset: 0 })).items.map((a) => a.action), ['new']);
    await users.stop();
    // A start prunes what aged while FLUX was down.
    await new Promise((r) => setTimeout(r, 300));
    const again = createUsers({ store: registry, adminToken: TEST_TOKEN, sessionTtlMs: 60_000, log: createLogger({ level: 'silent' }), audit: { maxAgeMs: 200 } });
    await again.start();
    assert.equal((await again.audit.list({ limit: 10, offset: 0 })).total, 0);
    assert.equal(again.generatedAdminPassword, undefined, 'the users exist: no new first admin');
    await again.stop();
  });

  it('cuts long fields instead of failing', async function () {
    const users = createUsers({ store: registry, adminToken: TEST_TOKEN, adminPassword: 'audit-admin-password', sessionTtlMs: 60_000, log: createLogger({ level: 'silent' }) });
    await users.start();
    users.audit.record({ username: 'x'.repeat(500), action: 'y'.repeat(500), target: '/z'.repeat(1000), detail: 'd'.repeat(5000), address: 'a'.repeat(200) });
    await users.audit.flush();
    const [row] = (await users.audit.list({ limit: 1, offset: 0, action: undefined })).items;
    assert.equal(row!.username?.length, 64);
    assert.equal(row!.target?.length, 500);
    assert.equal(row!.detail?.length, 1000);
    await users.stop();
  });
});
