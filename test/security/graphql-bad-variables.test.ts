/**
 * A variable of the wrong type is the client's mistake and gets graphql-js's reason: it was masked
 * as `Unexpected error.` with code `internal` (runtime/graphql/yoga.ts maskError hid every error
 * whose cause was another GraphQLError, which is how graphql-js wraps a scalar's refusal).
 */
import assert from 'node:assert/strict';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { gql } from '../graphql/helpers.ts';

describe('GraphQL variables of the wrong type (real process)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
  });
  after(async () => {
    await flux?.stop();
  });

  it('an Int given a string, an enum given an unknown value: the reason, not internal', async () => {
    const int = await gql(flux.url, flux.token, 'query($l: Int) { devices(limit: $l) { page { total } } }', { l: 'abc' });
    assert.notEqual(int.errors?.[0]?.extensions?.code, 'internal');
    assert.match(int.errors?.[0]?.message ?? '', /Variable "\$l" got invalid value "abc"; Int cannot represent/);
    const en = await gql(flux.url, flux.token, 'query($s: DeviceStatus) { devices(status: $s) { page { total } } }', { s: 'sleeping' });
    assert.match(en.errors?.[0]?.message ?? '', /Variable "\$s" got invalid value "sleeping"/);
  });

  it('a resolver\'s own refusal keeps its FLUX code', async () => {
    const r = await gql(flux.url, flux.token, 'query { devices(limit: 0) { page { total } } }');
    assert.equal(r.errors?.[0]?.extensions?.code, 'bad_request');
  });
});
