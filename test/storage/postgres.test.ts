/** The store contract on PostgreSQL: a database of its own on the server of this machine (or FLUX_TEST_PG_URL). */
import { createStore } from '../../runtime/storage/index.ts';
import { createTestDatabase } from '../helpers/databases.ts';
import { runStoreContract } from './store.contract.ts';

runStoreContract('postgres', async () => {
  const db = await createTestDatabase('postgres', 'flux_ts');
  const store = createStore({ dialect: 'postgres', url: db.url });
  await store.open();
  return { store, cleanup: () => db.drop() };
});
