/** The flows a cluster shares (registry.sharedFlows, migration 012), one suite on SQLite, MariaDB and PostgreSQL. */
import assert from 'node:assert/strict';
import { describeOnDialects } from './dialects.ts';

describeOnDialects('shared flows', (suite) => {
  it('holds none at first; of two first writes only the first is kept; a deploy replaces them', async function () {
    assert.equal(await suite.registry.sharedFlows.read(), null);
    assert.equal(await suite.registry.sharedFlows.writeFirst('[{"id":"a"}]', 'rev-a'), true);
    assert.equal(await suite.registry.sharedFlows.writeFirst('[{"id":"b"}]', 'rev-b'), false);
    assert.deepEqual(await suite.registry.sharedFlows.read(), { json: '[{"id":"a"}]', rev: 'rev-a' });
    // a flow JSON larger than 64 KiB (a TEXT column on MariaDB) is kept whole
    const big = JSON.stringify([{ id: 'big', func: 'x'.repeat(200_000) }]);
    await suite.registry.sharedFlows.write(big, 'rev-big');
    assert.deepEqual(await suite.registry.sharedFlows.read(), { json: big, rev: 'rev-big' });
  });

  it('holds the encrypted credentials beside the flows (migration 013), none until stored', async function () {
    assert.equal(await suite.registry.sharedFlows.readCredentials(), null);
    const creds = JSON.stringify({ $: 'a1b2'.repeat(40_000) });
    await suite.registry.sharedFlows.writeCredentials(creds);
    assert.equal(await suite.registry.sharedFlows.readCredentials(), creds);
    assert.equal((await suite.registry.sharedFlows.read())?.rev, 'rev-big');
  });
});
