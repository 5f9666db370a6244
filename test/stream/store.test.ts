/**
 * The `streams` table on SQLite, MariaDB and PostgreSQL: CRUD through the stream store, URLs with
 * credentials kept only encrypted with the key in the data dir, redaction of push targets.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRegistry, type Registry } from '../../runtime/registry/index.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { loadStreamKeys } from '../../runtime/stream/secrets.ts';
import { createStreamStore, redactRtmp } from '../../runtime/stream/store.ts';
import { tempDir } from '../helpers/flux-process.ts';
import { createTestDatabase, rawSql, type TestDatabase } from '../helpers/databases.ts';
import type { DbUrl } from '../../settings.ts';

const log = createLogger({ level: 'silent' });

for (const dialect of ['sqlite', 'mysql', 'postgres'] as const) {
  describe(`stream store on ${dialect}`, function () {
    this.timeout(30_000);
    let registry: Registry;
    let testDb: TestDatabase | undefined;
    let db: DbUrl;
    const dir = tempDir();

    before(async function () {
      if (dialect === 'sqlite') db = { dialect, url: 'sqlite:', file: path.join(dir, 'flux.db') };
      else {
        testDb = await createTestDatabase(dialect, 'flux_streams');
        db = { dialect, url: testDb.url };
      }
      registry = createRegistry({ db, log });
      await registry.start();
      // a stream names an existing device (runtime/stream/store.ts checks it)
      const product = await registry.products.create({ key: 'cams', name: 'Cameras' });
      await registry.devices.create({ id: 'dev1', product_id: product.id });
    });

    after(async function () {
      await registry?.stop();
      await testDb?.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('creates, lists, updates and deletes; credentials and stream keys are stored encrypted only', async function () {
      const store = createStreamStore(registry.streams, registry.devices, loadStreamKeys(dir));
      const s = await store.create({ id: 'cam-1', url: 'rtsp://admin:pa55word@10.0.0.7:554/ch1', rtmp_push: ['rtmp://push.example/live/secret-key?token=t0k'], device_id: 'dev1', tags: { a: 1 } });
      assert.equal(s.url, 'rtsp://10.0.0.7:554/ch1');
      assert.equal(s.has_credentials, true);
      assert.deepEqual(s.rtmp_push, ['rtmp://push.example/live/***']);
      const sql = await rawSql(db);
      const rows = await sql.query('SELECT * FROM streams').finally(() => sql.close());
      assert.equal(rows.length, 1);
      const raw = JSON.stringify(rows);
      for (const secret of ['pa55word', 'secret-key', 't0k']) assert.ok(!raw.includes(secret), `${secret} is not stored in clear`);
      assert.deepEqual(await store.source('cam-1'), { url: 'rtsp://admin:pa55word@10.0.0.7:554/ch1', rtmp_push: ['rtmp://push.example/live/secret-key?token=t0k'] });
      assert.deepEqual((await store.list({ device_id: 'dev1' })).map((x) => x.id), ['cam-1']);
      const u = await store.update('cam-1', { record: true, retention_hours: 2, url: 'rtsp://10.0.0.8/ch2' });
      assert.equal(u.record, true);
      assert.equal(u.has_credentials, false);
      assert.deepEqual((await store.source('cam-1')).rtmp_push, ['rtmp://push.example/live/secret-key?token=t0k'], 'pushes kept');
      // another key (a copied database without its data dir) cannot open the URLs
      const other = createStreamStore(registry.streams, registry.devices, loadStreamKeys(tempDir()));
      await assert.rejects(other.source('cam-1'), /cannot be decrypted/);
      await store.delete('cam-1');
      assert.equal(await store.find('cam-1'), null);
      await assert.rejects(store.get('../x'), /invalid|must match/);
    });
  });
}

describe('stream URL redaction and signatures', function () {
  it('masks user, password, query and the stream key of RTMP targets', function () {
    assert.equal(redactRtmp('rtmp://u:p@a.rtmp.example/live2/abcd-efgh'), 'rtmp://a.rtmp.example/live2/***');
    assert.equal(redactRtmp('rtmp://host/app'), 'rtmp://host/app');
  });

  it('signs per stream and per expiry', function () {
    const keys = loadStreamKeys(tempDir());
    const sig = keys.sign('a', Date.now() + 60_000);
    assert.equal(keys.verify('a', sig), true);
    assert.equal(keys.verify('b', sig), false);
    assert.equal(keys.verify('a', sig, Date.now() + 120_000), false);
    assert.equal(keys.verify('a', sig.replace(/^\d+/, (e) => String(Number(e) + 1))), false);
  });
});
