/**
 * @module graphql — GraphQL at /api/graphql (docs/graphql.md): graphql-yoga on the express app for
 * queries and mutations, graphql-ws on the same HTTP server for subscriptions, the REST API's
 * authentication (runtime/graphql/auth.ts), DataLoaders per request, depth and cost limits
 * (graphql-armor), and a GraphiQL page for admins.
 */
import type http from 'node:http';
import express from 'express';
import { GraphQLError, GraphQLScalarType, Kind, printSchema, type ValueNode } from 'graphql';
import { createYoga, createSchema, type YogaInitialContext } from 'graphql-yoga';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import type { Feed } from '../feed/index.ts';
import type { Downlink } from '../ingress/index.ts';
import { errorHandler } from '../api/index.ts';
import { FluxError, isFluxError, unauthorized } from '../errors/index.ts';
import { counter, gauge } from '../metrics/index.ts';
import { typeDefs } from './schema.ts';
import { createLoaders, type Loaders } from './loaders.ts';
import { queryResolvers, type QueryDeps } from './query.ts';
import { mutationResolvers } from './mutation.ts';
import { createHub, type Hub } from './hub.ts';
import { createSubscriptionServer, subscriptionResolvers, type SubscriptionServerOptions } from './subscriptions.ts';
import { READ_ROLE, WRITE_ROLE, authenticate, requireRole, tokenOfHeader, type Principal } from './auth.ts';
import type { Users } from '../users/index.ts';
import { roleAtLeast } from '../users/index.ts';

export const GRAPHQL_PATH = '/api/graphql';
export { typeDefs } from './schema.ts';
export { createHub, type Hub, type Member } from './hub.ts';
export { compileSubscription } from './compile.ts';

/** WebSocket limits: connections, and the send buffer a slow subscriber may fill (runtime/graphql/outlet.ts). */
export type GraphqlOptions = SubscriptionServerOptions;

/** What GraphQL serves from, given by the composition root. */
export interface GraphqlDeps extends QueryDeps {
  feed: Feed;
  server: http.Server;
  downlink: Downlink;
  /** who a token is, with its role */
  users: Users;
}

export interface Graphql extends FluxModule {
  /** Mounts POST/GET /api/graphql on the app (before the REST router, which would answer 404). */
  mount(app: express.Express): void;
  readonly hub: Hub;
}

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

const forbidden = (role: string, needs: string) => new FluxError('forbidden', `this needs the ${needs} role; the token's role is ${role}`, 403);

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

export function createGraphql(ctx: FluxContext, deps: GraphqlDeps, opts: GraphqlOptions = {}): Graphql {
  const log = ctx.log.child({ module: 'graphql' });
  const hub = createHub(deps.feed, { onRenderError: (err, topic) => log.error({ err, topic }, 'graphql: executing a subscription result failed') });
  const schema = buildSchema(ctx, deps, hub);
  const subscribers = gauge(ctx.metrics, 'flux_graphql_subscriptions', 'GraphQL subscriptions open');
  const groupsGauge = gauge(ctx.metrics, 'flux_graphql_subscription_groups', 'GraphQL subscription groups (one execution per event each)');
  const delivered = counter(ctx.metrics, 'flux_graphql_results_sent_total', 'GraphQL subscription results written to sockets');
  const droppedCounter = counter(ctx.metrics, 'flux_graphql_results_dropped_total', 'GraphQL subscription results a slow socket missed');
  const connections = gauge(ctx.metrics, 'flux_graphql_ws_connections', 'GraphQL WebSocket connections open');

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

  const ws = createSubscriptionServer(GRAPHQL_PATH, { users: deps.users, hub, yoga, maskError, log, onConnections: (n) => connections.set(n) }, opts);
  // Counters move by what the hub counted since the last tick: no metric call per delivery.
  let last = { delivered: 0, dropped: 0 };
  const gaugeTimer = setInterval(() => {
    const s = hub.stats();
    subscribers.set(s.subscriptions);
    groupsGauge.set(s.groups);
    delivered.inc(s.delivered - last.delivered);
    droppedCounter.inc(s.dropped - last.dropped);
    last = s;
  }, 1000);
  gaugeTimer.unref();

  const router = express.Router();
  router.use((req, _res, next) => {
    const html = req.method === 'GET' && (req.headers.accept ?? '').includes('text/html');
    const token = tokenOfHeader(req.headers.authorization) ?? (html && typeof req.query.access_token === 'string' ? req.query.access_token : undefined);
    if (!token) return next(unauthorized('missing bearer token: send Authorization: Bearer <token> (GraphiQL: ?access_token=)'));
    authenticate(deps.users, token).then((principal) => {
      if (!principal) return next(unauthorized('invalid or expired bearer token'));
      if (!roleAtLeast(principal.role, READ_ROLE)) return next(forbidden(principal.role, READ_ROLE));
      // the GraphiQL page (a browser's GET for HTML) is an admin's tool; queries stay open to viewers
      if (html && !roleAtLeast(principal.role, 'admin')) return next(forbidden(principal.role, 'admin'));
      (req as unknown as { principal: Principal }).principal = principal;
      next();
    }, next);
  });
  router.use(express.json({ limit: '256kb' }));
  router.use((req, res) => void yoga(req, res, { principal: (req as unknown as { principal: Principal }).principal }));
  router.use(errorHandler(log));

  return {
    name: 'graphql',
    hub,
    mount(app) {
      app.use(GRAPHQL_PATH, router);
    },
    async start() {
      deps.server.on('upgrade', ws.onUpgrade);
    },
    async stop() {
      deps.server.off('upgrade', ws.onUpgrade);
      clearInterval(gaugeTimer);
      await ws.dispose();
    },
    health(): ComponentHealth {
      const s = hub.stats();
      return { ok: true, subscriptions: s.subscriptions, groups: s.groups, connections: ws.connections(), delivered: s.delivered, dropped: s.dropped, failed: s.failed };
    },
  };
}
