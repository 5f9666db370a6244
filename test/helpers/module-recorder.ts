/**
 * Preloaded into a FLUX process under test (`NODE_OPTIONS=--import=<this file>`): records the URL of
 * every module the process loads, and on SIGUSR2 writes them to `$FLUX_DATA_DIR/loaded-modules.json`,
 * so a test can see which libraries a running FLUX has loaded (test/graphql/lazy-engine.test.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { registerHooks } from 'node:module';

const loaded = new Set<string>();
registerHooks({
  load(url, context, nextLoad) {
    loaded.add(url);
    return nextLoad(url, context);
  },
});
process.on('SIGUSR2', () => {
  const file = path.join(process.env.FLUX_DATA_DIR ?? '.', 'loaded-modules.json');
  fs.writeFileSync(`${file}.tmp`, JSON.stringify([...loaded]));
  fs.renameSync(`${file}.tmp`, file);
});
