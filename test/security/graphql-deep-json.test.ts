/**
 * JSON nested deeper than the REST bodies' 64 levels (docs/security.md "Limits"), through GraphQL's
 * JSON arguments: `testRuleScript` with a 20,000-deep message ended the FLUX process (JSON.stringify
 * overflowed its stack on the way to the script worker, in a setImmediate), and `createProduct`
 * answered `internal`. Now both answer `too_deep`, and the script pool fails such a run alone
 * whatever hands it over (the editor's rule test route, a flow).
 */
import assert from 'node:assert/strict';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { createScriptHost, type ScriptHost } from '../../runtime/scripts/index.ts';

const nested = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);

describe('deeply nested JSON through GraphQL (real process)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' });
  });
  after(async () => {
    await flux?.stop();
  });

  /** POSTs the JSON text as is (JSON.stringify here would overflow like the server did). */
  const post = async (query: string, variables: string) => {
    const res = await fetch(`${flux.url}/api/graphql`, { method: 'POST', headers: { authorization: `Bearer ${flux.token}`, 'content-type': 'application/json' }, body: `{"query":${JSON.stringify(query)},"variables":${variables}}` });
    return { status: res.status, body: (await res.json()) as { data?: any; errors?: { message: string; extensions?: { code?: string } }[] } };
  };

  it('testRuleScript with a message 20,000 levels deep: too_deep, and FLUX keeps running', async () => {
    const r = await post('mutation($m: JSON!) { testRuleScript(trigger_script: "return 1;", msg: $m) { result error } }', `{"m":{"device_id":"d1","values":{"a":${nested(20_000)}}}}`);
    assert.equal(r.body.errors?.[0]?.extensions?.code, 'too_deep', JSON.stringify(r.body).slice(0, 300));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(flux.child.exitCode, null, 'the process is still running');
    assert.equal((await flux.api('GET', '/api/health')).status, 200);
  });

  it('a JSON argument of 65 levels is refused as REST refuses it; 64 levels are stored', async () => {
    const deep = await post('mutation($m: JSON!) { createProduct(input: { key: "deep", name: "x", metadata: $m }) { key } }', `{"m":{"x":${nested(64)}}}`);
    assert.equal(deep.body.errors?.[0]?.extensions?.code, 'too_deep');
    const literal = await post(`mutation { createProduct(input: { key: "deep", name: "x", metadata: { x: ${nested(64)} } }) { key } }`, '{}');
    // a literal is checked while the document is validated: a validation error naming the limit
    assert.match(literal.body.errors?.[0]?.message ?? '', /nested more than 64 levels/);
    const ok = await post('mutation($m: JSON!) { createProduct(input: { key: "deep", name: "x", metadata: $m }) { key } }', `{"m":{"x":${nested(63)}}}`);
    assert.deepEqual(ok.body, { data: { createProduct: { key: 'deep' } } });
  });
});

describe('script pool: a message too deep to send to a worker', function () {
  this.timeout(30_000);
  let host: ScriptHost;
  before(async () => {
    host = await createScriptHost();
  });
  after(async () => {
    await host?.stop();
  });

  it('fails that run alone; the other runs of its batch answer', async () => {
    const script = host.load('return msg.values.n;');
    let deep: unknown = [];
    for (let i = 0; i < 20_000; i++) deep = [deep];
    const [bad, good] = await Promise.all([script.run({ device_id: 'd', values: { deep } as never }), script.run({ device_id: 'd', values: { n: 7 } })]);
    assert.equal(bad.ok, false);
    assert.equal(bad.error?.code, 'script_error');
    assert.match(bad.error!.message, /cannot be sent to the script worker/);
    assert.deepEqual([good.ok, good.result], [true, 7]);
    script.dispose();
  });
});
