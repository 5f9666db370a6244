/**
 * GraphQL's engine: the schema with its resolvers, graphql-yoga for queries and mutations, graphql-ws
 * for subscriptions when the sockets are served in this process. runtime/graphql/index.ts loads it on
 * the first use (an authenticated request or a WebSocket upgrade at /api/graphql), not at start:
 * graphql-js, yoga, envelop, graphql-tools and graphql-armor hold ~8 MB of heap (docs/operations.md "Memory").
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError, type DocumentNode, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { createSchema, type YogaInitialContext } from 'graphql-yoga';
import type { FluxContext } from '../app/context.ts';
import { isFluxError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { Users } from '../users/index.ts';
import { typeDefs } from './schema.ts';
import { createLoaders, type Loaders } from './loaders.ts';
import { queryResolvers } from './query.ts';
import { mutationResolvers } from './mutation.ts';
import type { Hub } from './hub.ts';
import { createSubscriptionServer, subscriptionResolvers, type ForwardedOperation, type SubscriptionServerOptions } from './subscriptions.ts';
import { JSONScalar, maskError, yogaOver } from './yoga.ts';
import { WRITE_ROLE, requireRole, tokenOfHeader, type Principal } from './auth.ts';
import type { GraphqlDeps } from './index.ts';

export { compileSubscription } from './compile.ts';
export { schemaText, subscriptionSchema } from './yoga.ts';

interface ServerContext {
  principal: Principal;
}
type Context = YogaInitialContext & ServerContext & { loaders: Loaders };

/** The executable schema. */
function buildSchema(ctx: FluxContext, deps: GraphqlDeps, hub: Hub) {
  return createSchema<Context>({
    typeDefs,
    resolvers: [{ JSON: JSONScalar }, queryResolvers(ctx, deps), guardMutations(mutationResolvers(ctx, deps) as never, deps.users), subscriptionResolvers(hub, maskError)] as never,
  });
}

/**
 * Every mutation needs the write role, checked before its resolver runs, and goes to the audit log
 * like a REST change (refused ones included), as `graphql <mutation>` with its target.
 */
function guardMutations(resolvers: { Mutation: Record<string, (root: unknown, args: any, context: any) => unknown> }, users: Users) {
  for (const [name, fn] of Object.entries(resolvers.Mutation)) {
    resolvers.Mutation[name] = async (root, args, context: { principal?: Principal; req?: { socket?: { remoteAddress?: string } } }) => {
      const p = context.principal;
      const target = String(args.id ?? args.device_id ?? args.input?.key ?? args.input?.id ?? '').slice(0, 200) || null;
      const record = (status: number) => {
        if (p) users.audit.record({ username: p.username, role: p.role, action: `graphql ${name}`, target, status, address: context.req?.socket?.remoteAddress ?? null });
      };
      try {
        requireRole(p, WRITE_ROLE);
        const out = await fn(root, args, context);
        record(200);
        return out;
      } catch (err) {
        record(isFluxError(err) ? err.status : 500);
        throw err;
      }
    };
  }
  return resolvers;
}

export interface GraphqlEngine {
  /** answers an authenticated request at /api/graphql (the router checked the token and its role) */
  handle(req: http.IncomingMessage, res: http.ServerResponse, principal: Principal): void;
  /** runs a query or mutation that came over a WebSocket in the socket process (its result, errors masked) */
  run(op: ForwardedOperation): Promise<ExecutionResult>;
  /** the HTTP server's `upgrade` listener when the sockets are served here (`sockets: 'inline'`) */
  onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
  connections(): number;
  dispose(): Promise<void>;
}

export interface EngineOptions {
  hub: Hub;
  log: Logger;
  /** called when the number of open WebSocket connections changes */
  onConnections(open: number): void;
  path: string;
  limits?: SubscriptionServerOptions;
}

export function createGraphqlEngine(ctx: FluxContext, deps: GraphqlDeps & { users: Users }, opts: EngineOptions): GraphqlEngine {
  const { hub, log } = opts;
  const GRAPHQL_PATH = opts.path;
  const schema = buildSchema(ctx, deps, hub);
  const yoga = yogaOver<ServerContext>(schema, GRAPHQL_PATH, {
    // GraphiQL for admins (the router checks the role; header, or ?access_token= from a browser); its requests carry the token.
    graphiql: (request) => {
      const token = new URL(request.url).searchParams.get('access_token') ?? tokenOfHeader(request.headers.get('authorization'));
      return { title: 'FLUX GraphQL', headers: JSON.stringify({ authorization: `Bearer ${token}` }), subscriptionsProtocol: 'WS' };
    },
    // GraphiQL from the npm package, whole in one page (scripts, styles and editor workers inline):
    // yoga's own page loads them from a CDN and stays blank offline. Loaded on the first page view
    // only (about 9 MB of text), not at start.
    renderGraphiQL: async (options) => (await import('@graphql-yoga/render-graphiql')).renderGraphiQL(options),
    context: () => ({ loaders: createLoaders(ctx, deps) }),
  });

  // Built on the first upgrade served here: with the sockets in their own process, never.
  let ws: ReturnType<typeof createSubscriptionServer> | undefined;
  return {
    handle: (req, res, principal) => void yoga(req, res, { principal }),
    async run(op) {
      // What graphql-ws does with an operation (runtime/graphql/subscriptions.ts), through yoga's envelop like HTTP.
      const enveloped = yoga.getEnveloped({ principal: op.principal, req: { socket: { remoteAddress: op.remoteAddress } }, params: op } as never);
      let document: DocumentNode;
      try {
        document = enveloped.parse(op.query);
      } catch (err) {
        return { errors: [err instanceof GraphQLError ? err : new GraphQLError((err as Error).message)] };
      }
      const errors = enveloped.validate(enveloped.schema, document);
      if (errors.length) return { errors };
      const contextValue = await enveloped.contextFactory();
      return (await enveloped.execute({ schema: enveloped.schema as GraphQLSchema, document, operationName: op.operationName, variableValues: op.variables, contextValue, rootValue: undefined })) as ExecutionResult;
    },
    onUpgrade(req, socket, head) {
      ws ??= createSubscriptionServer(GRAPHQL_PATH, { users: deps.users, hub, yoga, maskError, log, onConnections: opts.onConnections }, opts.limits);
      ws.onUpgrade(req, socket, head);
    },
    connections: () => ws?.connections() ?? 0,
    dispose: async () => {
      if (ws) await ws.dispose();
      else hub.close();
    },
  };
}
