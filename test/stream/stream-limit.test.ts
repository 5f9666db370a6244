/**
 * The number of streams is bounded by what FLUX loads at start (runtime/stream/store.ts MAX_STREAMS):
 * before, stream 10,001 could be created, but after a restart it was 404 and never ran (its
 * recording silently stopped). Creating past the bound is now a 409 `too_many`.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { createRegistry, type Registry } from '../../runtime/registry/index.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { loadStreamKeys } from '../../runtime/stream/secrets.ts';
import { createStreamStore } from '../../runtime/stream/store.ts';
import { FluxError } from '../../runtime/errors/index.ts';
import { tempDir } from '../helpers/flux-process.ts';

describe('stream store: a bounded number of streams', function () {
  this.timeout(30_000);
  let registry: Registry;
  const dir = tempDir();

  before(async function () {
    registry = createRegistry({ db: { dialect: 'sqlite', url: 'sqlite:', file: path.join(dir, 'flux.db') }, log: createLogger({ level: 'silent' }) });
    await registry.start();
  });

  after(async function () {
    await registry?.stop();
  });

  it('refuses a stream past the bound with 409 too_many, and every stream created is listed (so loaded at start)', async function () {
    const store = createStreamStore(registry.streams, registry.devices, loadStreamKeys(dir), 3);
    for (const id of ['a', 'b', 'c']) await store.create({ id, url: 'rtsp://127.0.0.1:554/x' });
    await assert.rejects(store.create({ id: 'd', url: 'rtsp://127.0.0.1:554/x' }), (e: unknown) => e instanceof FluxError && e.status === 409 && e.code === 'too_many');
    assert.deepEqual((await store.list()).map((s) => s.id), ['a', 'b', 'c']);
    await store.delete('a');
    await store.create({ id: 'd', url: 'rtsp://127.0.0.1:554/x' });
    assert.deepEqual((await store.list()).map((s) => s.id), ['b', 'c', 'd']);
  });
});
