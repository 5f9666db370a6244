/**
 * GraphQL over WebSocket (graphql-ws, protocol `graphql-transport-ws`) on the HTTP server's
 * upgrade at /api/graphql. Queries and mutations sent over the socket run through yoga's envelop
 * like HTTP ones. A subscription does not: graphql-ws would run graphql-js's `subscribe`, which
 * executes the selection set once per event per subscriber and serialises each result on its own.
 * Here the `subscribe` hook (graphql-ws's documented replacement for graphql-js's) only sets the
 * subscription up (graphql-js `createSourceEventStream`: variables coerced, arguments checked, the
 * root field's `subscribe` resolver run), and the resolver joins the hub's group for its document,
 * operation and variables (runtime/graphql/hub.ts). The group executes each event once with
 * graphql-js `execute` (what `subscribe` does per event) and writes the same JSON to every member's
 * socket (runtime/graphql/outlet.ts: bounded by `ws.bufferedAmount`).
 *
 * Authentication is per connection: the token in `connectionParams`, checked in `onConnect` (4403
 * without a valid one), checked again when users or tokens change and when a login session ends
 * (closed with 4401).
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { createSourceEventStream, execute, getOperationAST, GraphQLError, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLResolveInfo, type GraphQLSchema } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { YogaServerInstance } from 'graphql-yoga';
import type { Logger } from '../log/index.ts';
import { FluxError } from '../errors/index.ts';
import { roleAtLeast, type Users } from '../users/index.ts';
import { READ_ROLE, authenticate, tokenOfConnectionParams, type Principal } from './auth.ts';
import { addressKey } from '../login-limiter/index.ts';
import { SLOW_CLOSE_CODE, SocketOutlet } from './outlet.ts';
import { compileSubscription } from './compile.ts';
import type { Hub, Member, Render, SubscriptionFilter, Topic } from './hub.ts';

/** graphql-ws's close code for a token that is missing or wrong at connect time. */
export const WS_CLOSE_FORBIDDEN = 4403;
/** The close code for a token revoked, or a login session that ended, while connected (graphql-ws's Unauthorized). */
export const WS_CLOSE_UNAUTHORIZED = 4401;
/** Operations (subscriptions, queries still running) one connection may have at once. */
export const MAX_OPERATIONS_PER_CONNECTION = 100;

export interface SubscriptionServerOptions {
  /** WebSocket connections at most (default 5000) */
  maxConnections?: number;
  /** connections of one client address (IPv6: its /64) not yet authenticated, at most (default 500) */
  maxUnauthenticatedPerAddress?: number;
  /** bytes waiting in a socket past which subscription results are dropped (default 1 MiB) */
  highWaterBytes?: number;
  /** how long a socket may stay past highWaterBytes before it is closed with 1013 (default 10 s) */
  slowCloseMs?: number;
  /** how long a socket closed for being slow has to read up to the close frame before it is cut off (default 2 s) */
  slowCutOffMs?: number;
}

/** What a subscription's `subscribe` resolver needs to join its group (the contextValue of a WebSocket subscription). */
interface FanoutTarget {
  member: Member;
  query: string;
  operationName: string | null;
  document: DocumentNode;
  variables: Record<string, unknown> | null;
}
export interface SubscriptionContext {
  fanout?: FanoutTarget;
}

type MaskError = (error: unknown, message: string) => Error;

/** The Subscription fields' resolver: the event's payload is the field's value (what graphql-js `subscribe` executes against). */
const passThrough = (payload: unknown) => payload;

/**
 * A group's renderer, serialising once per event: the compiled projection (runtime/graphql/compile.ts)
 * when the document and the payload allow it, else graphql-js `execute` with the payload as root value.
 */
function renderer(schema: GraphQLSchema, t: FanoutTarget, maskError: MaskError): Render {
  const args: ExecutionArgs = { schema, document: t.document, operationName: t.operationName, variableValues: t.variables, contextValue: {} };
  const json = (r: ExecutionResult) => JSON.stringify(r.errors ? { ...r, errors: r.errors.map((e) => maskError(e, 'Unexpected error.')) } : r);
  const fast = compileSubscription(schema, t.document, t.operationName, (f) => f.resolve === passThrough);
  return (payload) => {
    const quick = fast?.(payload);
    if (quick) return quick;
    const r = execute({ ...args, rootValue: payload });
    return r instanceof Promise ? r.then(json) : json(r as ExecutionResult);
  };
}

/** The Subscription type's resolvers: `subscribe` joins the hub, `resolve` passes the payload on. */
export function subscriptionResolvers(hub: Hub, maskError: MaskError) {
  const sub = (topic: Topic) => ({
    subscribe: (_root: unknown, args: SubscriptionFilter, context: SubscriptionContext, info: GraphQLResolveInfo) => {
      const t = context.fanout;
      if (!t) throw new FluxError('bad_request', 'subscriptions are served over WebSocket at /api/graphql (graphql-ws, protocol graphql-transport-ws)', 400);
      return hub.subscribe({
        topic,
        filter: args,
        // Equal document, operation and (coerced) variable values: equal results for every event.
        key: `${t.operationName ?? ''}\n${JSON.stringify(info.variableValues)}\n${t.query}`,
        render: () => renderer(info.schema, t, maskError),
        member: t.member,
      });
    },
    resolve: passThrough,
  });
  return { Subscription: { telemetry: sub('telemetry'), status: sub('status'), events: sub('event'), alarms: sub('alarm') } };
}

/** A query or mutation sent over a WebSocket, to be run where the resolvers' backends are (runtime/graphql/socket-process.ts). */
export interface ForwardedOperation {
  query: string;
  variables: Record<string, unknown> | null;
  operationName: string | null;
  principal: Principal;
  remoteAddress: string | null;
}

export interface SubscriptionServerDeps {
  users: Pick<Users, 'authenticate' | 'onChange'>;
  hub: Hub;
  yoga: Pick<YogaServerInstance<{ principal: Principal }, object>, 'getEnveloped'>;
  maskError: MaskError;
  log: Logger;
  /** called when the number of open connections changes */
  onConnections(open: number): void;
  /** runs queries and mutations elsewhere (the socket process has no backends); default: through `yoga` here */
  forward?(op: ForwardedOperation): Promise<ExecutionResult>;
}

export interface SubscriptionServer {
  /** the HTTP server's `upgrade` listener (other paths are left to other listeners) */
  onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
  connections(): number;
  dispose(): Promise<void>;
}

interface Connection {
  token: string;
  /** the role it connected with: its operations run with it, so a lower role now closes it */
  role: Principal['role'];
  expiry?: NodeJS.Timeout;
}

export function createSubscriptionServer(path: string, deps: SubscriptionServerDeps, opts: SubscriptionServerOptions = {}): SubscriptionServer {
  const { hub, log } = deps;
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  const outlets = new WeakMap<WebSocket, SocketOutlet>();
  const connections = new Map<WebSocket, Connection>();
  const outletOptions = {
    highWaterBytes: opts.highWaterBytes ?? 1 << 20,
    slowCloseMs: opts.slowCloseMs ?? 10_000,
    cutOffMs: opts.slowCutOffMs ?? 2000,
    onDrop: () => hub.countDrop(),
    onSlowClose: (dropped: number) => log.warn({ dropped }, 'closing a GraphQL WebSocket client that stayed too slow'),
  };
  let open = 0;
  // Sockets that have not authenticated yet, per client address: without a bound, one client that
  // upgraded and re-upgraded without connection_init (graphql-ws waits 3 s) held every slot.
  const unauthenticated = new Map<WebSocket, string>();
  const perAddress = new Map<string, number>();
  const release = (ws: WebSocket) => {
    const key = unauthenticated.get(ws);
    if (key === undefined) return;
    unauthenticated.delete(ws);
    const n = (perAddress.get(key) ?? 1) - 1;
    if (n > 0) perAddress.set(key, n);
    else perAddress.delete(key);
  };

  const forget = (ws: WebSocket) => {
    const c = connections.get(ws);
    if (c) clearTimeout(c.expiry);
    connections.delete(ws);
  };

  // A token revoked, or its user deleted or given a new password or a lower role, while connected: the connection goes.
  // A lower role too: the connection's operations run as the principal it connected as (onSubscribe).
  const unsubscribeUsers = deps.users.onChange(() => {
    for (const [ws, c] of connections) {
      authenticate(deps.users, c.token).then(
        (who) => {
          if (!who || !roleAtLeast(who.role, READ_ROLE)) ws.close(WS_CLOSE_UNAUTHORIZED, 'the token was revoked');
          else if (!roleAtLeast(who.role, c.role)) ws.close(WS_CLOSE_UNAUTHORIZED, `the token's role was lowered to ${who.role}`);
        },
        (err: unknown) => log.debug({ err }, 'graphql: could not check a token again'),
      );
    }
  });

  const server = useServer<Record<string, unknown>, { principal?: Principal }>(
    {
      onConnect: async (c) => {
        const token = tokenOfConnectionParams(c.connectionParams);
        const principal = await authenticate(deps.users, token);
        if (!principal || !token || !roleAtLeast(principal.role, READ_ROLE)) return false; // closes with 4403 Forbidden
        c.extra.principal = principal;
        const ws = c.extra.socket;
        const conn: Connection = { token, role: principal.role };
        if (principal.expires_at !== undefined) {
          conn.expiry = setTimeout(() => ws.close(WS_CLOSE_UNAUTHORIZED, 'the login session expired'), Math.min(Math.max(0, principal.expires_at - Date.now()), 2 ** 31 - 1));
          conn.expiry.unref();
        }
        connections.set(ws, conn);
        ws.once('close', () => forget(ws));
        release(ws);
        return true;
      },
      onSubscribe: async (c, id, params) => {
        // Memory per connection stays bounded: a client that sends without reading its answers
        // would have them wait in this process (SocketOutlet bounds subscription results only),
        // and every subscription holds a group of its own.
        if (c.extra.socket.bufferedAmount > outletOptions.highWaterBytes) {
          c.extra.socket.close(SLOW_CLOSE_CODE, 'too slow: answers are not read');
          c.extra.socket.terminate();
          return [new GraphQLError('too slow: answers are not read')];
        }
        if (Object.keys(c.subscriptions).length > MAX_OPERATIONS_PER_CONNECTION) {
          return [new GraphQLError(`at most ${MAX_OPERATIONS_PER_CONNECTION} operations at once per connection (subscriptions and running queries); open another connection or complete some`, { extensions: { code: 'too_many' } })];
        }
        const enveloped = deps.yoga.getEnveloped({ ...c, req: c.extra.request, socket: c.extra.socket, params, principal: c.extra.principal! });
        let document: DocumentNode;
        try {
          document = enveloped.parse(params.query);
        } catch (err) {
          return [err instanceof GraphQLError ? err : new GraphQLError((err as Error).message)];
        }
        const errors = enveloped.validate(enveloped.schema, document);
        if (errors.length) return errors;
        const base = { schema: enveloped.schema as GraphQLSchema, operationName: params.operationName, document, variableValues: params.variables };
        if (getOperationAST(document, params.operationName)?.operation === 'subscription') {
          let outlet = outlets.get(c.extra.socket);
          if (!outlet) outlets.set(c.extra.socket, (outlet = new SocketOutlet(c.extra.socket, outletOptions)));
          const fanout: FanoutTarget = { member: { outlet, prefix: `{"id":${JSON.stringify(id)},"type":"next","payload":` }, query: params.query, operationName: params.operationName ?? null, document, variables: params.variables ?? null };
          return { ...base, contextValue: { fanout } satisfies SubscriptionContext, rootValue: undefined };
        }
        const forward = deps.forward;
        if (forward) {
          const op: ForwardedOperation = { query: params.query, variables: params.variables ?? null, operationName: params.operationName ?? null, principal: c.extra.principal!, remoteAddress: c.extra.request.socket?.remoteAddress ?? null };
          return { ...base, contextValue: {}, rootValue: { execute: () => forward(op) } };
        }
        return { ...base, contextValue: await enveloped.contextFactory(), rootValue: { execute: enveloped.execute } };
      },
      execute: (args) => (args.rootValue as { execute: typeof execute }).execute(args),
      // Sets the subscription up only; results reach the socket through the hub, not through this iterator.
      subscribe: async (args) => {
        const r = await createSourceEventStream(args);
        if (Symbol.asyncIterator in r) return r as AsyncGenerator<ExecutionResult>;
        return { ...r, errors: r.errors?.map((e) => deps.maskError(e, 'Unexpected error.') as GraphQLError) };
      },
    },
    wss,
  );

  return {
    onUpgrade(req, socket, head) {
      if (new URL(req.url ?? '/', 'http://x').pathname !== path) return;
      if (open >= (opts.maxConnections ?? 5000)) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
        return;
      }
      const key = addressKey(req.socket?.remoteAddress);
      if ((perAddress.get(key) ?? 0) >= (opts.maxUnauthenticatedPerAddress ?? 500)) {
        socket.end('HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (client) => {
        open++;
        deps.onConnections(open);
        unauthenticated.set(client, key);
        perAddress.set(key, (perAddress.get(key) ?? 0) + 1);
        client.once('close', () => {
          open--;
          release(client);
          deps.onConnections(open);
        });
        wss.emit('connection', client, req);
      });
    },
    connections: () => open,
    async dispose() {
      unsubscribeUsers();
      hub.close();
      for (const ws of connections.keys()) forget(ws);
      await server.dispose();
      for (const c of wss.clients) c.terminate();
    },
  };
}
