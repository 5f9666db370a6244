/**
 * GraphQL's engine: the schema with its resolvers, graphql-yoga for queries and mutations, graphql-ws
 * for subscriptions. runtime/graphql/index.ts loads it on the first use (an authenticated request
 * or a WebSocket upgrade at /api/graphql), not at start: graphql-js, yoga, envelop, graphql-tools and
 * graphql-armor hold ~8 MB of heap (docs/operations.md "Memory").
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError, GraphQLScalarType, Kind, printSchema, type ValueNode } from 'graphql';
import { createYoga, createSchema, type YogaInitialContext } from 'graphql-yoga';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import type { FluxContext } from '../app/context.ts';
import { isFluxError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { Users } from '../users/index.ts';
import { typeDefs } from './schema.ts';
import { createLoaders, type Loaders } from './loaders.ts';
import { queryResolvers } from './query.ts';
import { mutationResolvers } from './mutation.ts';
import type { Hub } from './hub.ts';
import { createSubscriptionServer, subscriptionResolvers, type SubscriptionServerOptions } from './subscriptions.ts';
import { WRITE_ROLE, requireRole, tokenOfHeader, type Principal } from './auth.ts';
import type { GraphqlDeps } from './index.ts';

export { compileSubscription } from './compile.ts';

interface ServerContext {
  principal: Principal;
}
type Context = YogaInitialContext & ServerContext & { loaders: Loaders };

/** Any JSON value, passed through as is. */
const JSONScalar = new GraphQLScalarType({
  name: 'JSON',
  description: 'Any JSON value (thing models, tags, payloads, counters).',
  serialize: (v) => v,
  parseValue: (v) => v,
  parseLiteral: function literal(node: ValueNode, variables?: Record<string, unknown> | null): unknown {
    switch (node.kind) {
      case Kind.STRING:
      case Kind.BOOLEAN:
        return node.value;
      case Kind.INT:
      case Kind.FLOAT:
        return Number(node.value);
      case Kind.NULL:
        return null;
      case Kind.LIST:
        return node.values.map((v) => literal(v, variables));
      case Kind.OBJECT:
        return Object.fromEntries(node.fields.map((f) => [f.name.value, literal(f.value, variables)]));
      case Kind.VARIABLE:
        return variables?.[node.name.value];
      default:
        return undefined;
    }
  },
});

/** The executable schema. */
function buildSchema(ctx: FluxContext, deps: GraphqlDeps, hub: Hub) {
  return createSchema<Context>({
    typeDefs,
    resolvers: [{ JSON: JSONScalar }, queryResolvers(ctx, deps), guardMutations(mutationResolvers(ctx, deps) as never, deps.users), subscriptionResolvers(hub, maskError)] as never,
  });
}

/** The schema's types with the Subscription resolvers only (tests compare the compiled projection with graphql-js on it). */
export function subscriptionSchema(hub: Hub) {
  return createSchema({ typeDefs, resolvers: [{ JSON: JSONScalar }, subscriptionResolvers(hub, maskError)] as never });
}

/** The schema as SDL, for docs/schema.graphql (the served schema is these type definitions with resolvers). */
export function schemaText(): string {
  return printSchema(createSchema({ typeDefs, resolvers: { JSON: JSONScalar } })) + '\n';
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

/** FluxError → its message and code (status in extensions); anything else is masked. */
function maskError(error: unknown, message: string): Error {
  const e = error as GraphQLError;
  const original = e instanceof GraphQLError ? e.originalError : error;
  if (isFluxError(original)) return new GraphQLError(original.message, { nodes: e.nodes, path: e.path, extensions: { code: original.code, status: original.status } });
  if (e instanceof GraphQLError && !e.originalError) return e;
  // zod (parseBody) and express errors arrive as FluxError; anything else is a bug: hidden from the client.
  return new GraphQLError(message, { nodes: e.nodes, path: e.path, extensions: { code: 'internal' } });
}

export interface GraphqlEngine {
  /** answers an authenticated request at /api/graphql (the router checked the token and its role) */
  handle(req: http.IncomingMessage, res: http.ServerResponse, principal: Principal): void;
  /** the HTTP server's `upgrade` listener (other paths are left to other listeners) */
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
  const yoga = createYoga<ServerContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    // GraphiQL for admins (the router checks the role; header, or ?access_token= from a browser); its requests carry the token.
    graphiql: (request) => {
      const token = new URL(request.url).searchParams.get('access_token') ?? tokenOfHeader(request.headers.get('authorization'));
      return { title: 'FLUX GraphQL', headers: JSON.stringify({ authorization: `Bearer ${token}` }), subscriptionsProtocol: 'WS' };
    },
    // GraphiQL from the npm package, whole in one page (scripts, styles and editor workers inline):
    // yoga's own page loads them from a CDN and stays blank offline. Loaded on the first page view
    // only (about 9 MB of text), not at start.
    renderGraphiQL: async (options) => (await import('@graphql-yoga/render-graphiql')).renderGraphiQL(options),
    landingPage: false,
    logging: false,
    maskedErrors: { maskError },
    context: () => ({ loaders: createLoaders(ctx, deps) }),
    plugins: [
      EnvelopArmorPlugin({
        maxDepth: { n: 8 },
        costLimit: { maxCost: 5000 },
        maxAliases: { n: 15 },
        maxDirectives: { n: 20 },
        maxTokens: { n: 3000 },
        blockFieldSuggestion: { enabled: true },
      }),
    ],
  });

  const ws = createSubscriptionServer(GRAPHQL_PATH, { users: deps.users, hub, yoga, maskError, log, onConnections: opts.onConnections }, opts.limits);
  return {
    handle: (req, res, principal) => void yoga(req, res, { principal }),
    onUpgrade: ws.onUpgrade,
    connections: ws.connections,
    dispose: ws.dispose,
  };
}
