/** The store contract on MariaDB/MySQL: a database of its own on the server of this machine (or FLUX_TEST_MYSQL_URL). */
import { createStore } from '../../runtime/storage/index.ts';
import { createTestDatabase } from '../helpers/databases.ts';
import { runStoreContract } from './store.contract.ts';

runStoreContract('mysql (MariaDB)', async () => {
  const db = await createTestDatabase('mysql', 'flux_ts');
  const store = createStore({ dialect: 'mysql', url: db.url });
  await store.open();
  return { store, cleanup: () => db.drop() };
});
