/**
 * GraphQL request bodies are at most 256 KiB whatever their content type (docs/security.md
 * "Limits", 413 too_large): express.json bounded JSON only, and yoga read application/graphql,
 * form-encoded and multipart bodies itself, up to 25 MB each.
 */
import assert from 'node:assert/strict';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';

describe('GraphQL request body limit, every content type (real process)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
  });
  after(async () => {
    await flux?.stop();
  });

  const post = async (contentType: string, body: string | FormData) => {
    const headers: Record<string, string> = { authorization: `Bearer ${flux.token}` };
    if (contentType) headers['content-type'] = contentType;
    const res = await fetch(`${flux.url}/api/graphql`, { method: 'POST', headers, body });
    return { status: res.status, body: (await res.json()) as any };
  };
  const padding = ' '.repeat(300 * 1024);

  for (const [type, make] of [
    ['application/json', (q: string, pad: string) => JSON.stringify({ query: q + pad })],
    ['application/graphql', (q: string, pad: string) => q + pad],
    ['application/x-www-form-urlencoded', (q: string, pad: string) => `query=${encodeURIComponent(q + pad)}`],
  ] as const) {
    it(`${type}: 413 too_large past 256 KiB; a small one is answered`, async () => {
      const big = await post(type, make('{ __typename }', padding));
      assert.equal(big.status, 413);
      assert.equal(big.body.error?.code, 'too_large');
      assert.deepEqual((await post(type, make('{ __typename }', ''))).body, { data: { __typename: 'Query' } });
    });
  }

  it('multipart/form-data: 413 too_large past 256 KiB', async () => {
    const form = new FormData();
    form.set('operations', JSON.stringify({ query: '{ __typename }' + padding }));
    form.set('map', '{}');
    const big = await post('', form);
    assert.equal(big.status, 413);
    assert.equal(big.body.error?.code, 'too_large');
  });
});
