/**
 * A GraphQL WebSocket runs its operations as the principal it connected as: an operator demoted to
 * viewer while connected must lose the socket (4401, docs/graphql.md "Authentication"), not keep
 * sending mutations over it. Both socket modes run the same check (runtime/graphql/subscriptions.ts).
 */
import assert from 'node:assert/strict';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { waitFor } from '../rules/helpers.ts';

for (const sockets of ['inline', 'process'] as const) {
  describe(`GraphQL WebSocket of a demoted user (FLUX_GRAPHQL_SOCKETS=${sockets})`, function () {
    this.timeout(60_000);
    let flux: FluxProcess;
    let client: Client | undefined;

    before(async () => {
      flux = await startFlux({ FLUX_LOG_LEVEL: 'warn', FLUX_GRAPHQL_SOCKETS: sockets });
    });
    after(async () => {
      await client?.dispose();
      await flux?.stop();
    });

    it('closes the socket with 4401 when the role is lowered (its mutations ran as the operator until then)', async () => {
      assert.equal((await flux.api('POST', '/api/users', { username: 'op1', password: 'operator-password', role: 'operator' })).status, 201);
      const login = await fetch(`${flux.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'op1', password: 'operator-password' }) });
      const session = ((await login.json()) as { token: string }).token;
      // a personal token keeps working after the demotion, with the lower role
      const made = await fetch(`${flux.url}/api/tokens`, { method: 'POST', headers: { authorization: `Bearer ${session}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'ws', role: 'operator' }) });
      const token = ((await made.json()) as { token: string }).token;
      let closed: number | undefined;
      client = createClient({
        url: `${flux.url.replace(/^http/, 'ws')}/api/graphql`,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${token}` },
        retryAttempts: 0,
        lazy: false,
        onNonLazyError: () => {},
        on: { closed: (e) => void (closed = (e as { code?: number }).code) },
      });
      const mutate = (key: string) =>
        new Promise<unknown>((resolve) => {
          const out: unknown[] = [];
          client!.subscribe({ query: `mutation { createProduct(input: { key: "${key}", name: "x" }) { key } }` }, { next: (v) => void out.push(v), error: (e) => resolve({ error: e }), complete: () => resolve(out) });
        });
      assert.deepEqual(await mutate('before_demotion'), [{ data: { createProduct: { key: 'before_demotion' } } }]);

      assert.equal((await flux.api('PATCH', '/api/users/op1', { role: 'viewer' })).status, 200);
      await waitFor('the socket closed with 4401', () => closed === 4401);
    });
  });
}
