/** The store contract on the SQLite backend (the default), in a temp file. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createStore } from '../../runtime/storage/index.ts';
import { runStoreContract } from './store.contract.ts';

runStoreContract('sqlite', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-ts-'));
  const store = createStore({ dialect: 'sqlite', url: 'sqlite:', file: path.join(dir, 'telemetry.db') });
  await store.open();
  return { store, cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }) };
});
