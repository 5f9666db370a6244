/** GraphQL clients for the tests: HTTP (fetch, like any client) and WebSocket (graphql-ws's own client). */
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface GqlAnswer {
  status: number;
  data?: any;
  errors?: { message: string; extensions?: { code?: string; status?: number } }[];
  error?: { code: string; message: string };
}

/** POSTs one operation to `{base}/api/graphql`. */
export async function gql(base: string, token: string | null, query: string, variables?: Record<string, unknown>): Promise<GqlAnswer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}/api/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as Omit<GqlAnswer, 'status'>;
  return { status: res.status, ...body };
}

/** The data of an operation that must succeed (its errors fail the test with their text). */
export async function gqlData(base: string, token: string, query: string, variables?: Record<string, unknown>): Promise<any> {
  const r = await gql(base, token, query, variables);
  if (r.status !== 200 || r.errors) throw new Error(`GraphQL ${r.status}: ${JSON.stringify(r.errors ?? r.error)}`);
  return r.data;
}

export function wsClient(base: string, connectionParams: Record<string, unknown>): Client {
  return createClient({ url: `${base.replace(/^http/, 'ws')}/api/graphql`, webSocketImpl: WebSocket, connectionParams, retryAttempts: 0, lazy: false });
}

/** A subscription that collects its results; `next(n)` waits for the n-th. */
export function collect(client: Client, query: string, variables?: Record<string, unknown>) {
  const got: any[] = [];
  const errors: unknown[] = [];
  let wake: (() => void) | undefined;
  const stop = client.subscribe(
    { query, variables },
    {
      next: (v) => {
        got.push(v);
        wake?.();
      },
      error: (e) => {
        errors.push(e);
        wake?.();
      },
      complete: () => wake?.(),
    },
  );
  return {
    got,
    errors,
    stop,
    async next(n: number, timeoutMs = 10_000): Promise<any[]> {
      const until = Date.now() + timeoutMs;
      while (got.length < n && errors.length === 0) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${n} subscription results (got ${got.length})`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
      if (errors.length) throw new Error(`subscription error: ${JSON.stringify(errors[0])}`);
      return got;
    },
  };
}
