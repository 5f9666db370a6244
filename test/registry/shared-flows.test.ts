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
    assert.equal(await suite.registry.sharedFlows.writeIf({ rev: 'rev-a', credentials: null }, big, 'rev-big'), true);
    assert.deepEqual(await suite.registry.sharedFlows.read(), { json: big, rev: 'rev-big' });
  });

  it('holds the encrypted credentials beside the flows (migration 013), none until stored', async function () {
    assert.equal(await suite.registry.sharedFlows.readCredentials(), null);
    const creds = JSON.stringify({ $: 'a1b2'.repeat(40_000) });
    assert.equal(await suite.registry.sharedFlows.writeFirstCredentials(creds, 'rev-big'), true);
    assert.equal(await suite.registry.sharedFlows.readCredentials(), creds);
    assert.equal((await suite.registry.sharedFlows.read())?.rev, 'rev-big');
  });
});

describeOnDialects('shared flows: a deploy is a compare-and-set', (suite) => {
  it('writes only while the row holds the revision and credentials the deploying node loaded', async function () {
    const flows = suite.registry.sharedFlows;
    assert.equal(await flows.writeFirst('[{"id":"0"}]', 'rev-0'), true);
    // two nodes loaded rev-0 without credentials: the first deploy is stored, the second refused
    assert.equal(await flows.writeIf({ rev: 'rev-0', credentials: null }, '[{"id":"1"}]', 'rev-1', '{"$":"c1"}'), true);
    assert.equal(await flows.writeIf({ rev: 'rev-0', credentials: null }, '[{"id":"2"}]', 'rev-2', '{"$":"c2"}'), false);
    assert.deepEqual(await flows.read(), { json: '[{"id":"1"}]', rev: 'rev-1' });
    assert.equal(await flows.readCredentials(), '{"$":"c1"}');
    // a deploy that changes only credentials keeps the revision: the credentials are compared too
    assert.equal(await flows.writeIf({ rev: 'rev-1', credentials: '{"$":"c1"}' }, '[{"id":"1"}]', 'rev-1', '{"$":"c3"}'), true);
    assert.equal(await flows.writeIf({ rev: 'rev-1', credentials: '{"$":"c1"}' }, '[{"id":"1"}]', 'rev-1', '{"$":"c4"}'), false);
    assert.equal(await flows.readCredentials(), '{"$":"c3"}');
    // without credentials to write (none changed) they stay; writing what is stored already is no conflict
    assert.equal(await flows.writeIf({ rev: 'rev-1', credentials: '{"$":"c3"}' }, '[{"id":"5"}]', 'rev-5'), true);
    assert.equal(await flows.readCredentials(), '{"$":"c3"}');
    assert.equal(await flows.writeIf({ rev: 'rev-5', credentials: '{"$":"c3"}' }, '[{"id":"5"}]', 'rev-5'), true);
    assert.equal(await flows.writeIf({ rev: 'rev-1', credentials: '{"$":"c3"}' }, '[{"id":"6"}]', 'rev-6'), false);
    assert.deepEqual(await flows.read(), { json: '[{"id":"5"}]', rev: 'rev-5' });
  });
});

describeOnDialects('shared flows: the first node\'s own credentials', (suite) => {
  it('are written only while none are stored and the flows are the ones they go with', async function () {
    const flows = suite.registry.sharedFlows;
    assert.equal(await flows.writeFirst('[{"id":"0"}]', 'rev-0'), true);
    assert.equal(await flows.writeFirstCredentials('{"$":"other"}', 'rev-other'), false);
    assert.equal(await flows.readCredentials(), null);
    assert.equal(await flows.writeFirstCredentials('{"$":"own"}', 'rev-0'), true);
    assert.equal(await flows.writeFirstCredentials('{"$":"late"}', 'rev-0'), false);
    assert.equal(await flows.readCredentials(), '{"$":"own"}');
  });
});
