/**
 * @module graphql — GraphQL at /api/graphql (docs/graphql.md): graphql-yoga on the express app for
 * queries and mutations, graphql-ws on the same HTTP server for subscriptions, the REST API's
 * authentication (runtime/graphql/auth.ts), DataLoaders per request, depth and cost limits
 * (graphql-armor), and a GraphiQL page for admins.
 *
 * This face loads none of the GraphQL libraries: the engine (runtime/graphql/engine.ts) is imported
 * on the first authenticated request or WebSocket upgrade at /api/graphql (docs/operations.md "Memory").
 */
import type http from 'node:http';
import os from 'node:os';
import type { Duplex } from 'node:stream';
import express from 'express';
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import type { Feed } from '../feed/index.ts';
import type { Downlink } from '../ingress/index.ts';
import { errorHandler } from '../api/index.ts';
import { FluxError, unauthorized } from '../errors/index.ts';
import { counter, gauge } from '../metrics/index.ts';
import type { QueryDeps } from './query.ts';
import { createHub, type Hub } from './hub.ts';
import type { SubscriptionServerOptions } from './subscriptions.ts';
import { READ_ROLE, authenticate, tokenOfHeader, type Principal } from './auth.ts';
import type { Users } from '../users/index.ts';
import { roleAtLeast } from '../users/index.ts';
import type { GraphqlEngine } from './engine.ts';
import { createSocketProcess } from './socket-process.ts';

export const GRAPHQL_PATH = '/api/graphql';
/** Request bodies of any content type (docs/security.md "Limits"; 413 too_large past it). */
const BODY_LIMIT = '256kb';
export { typeDefs } from './schema.ts';
export { createHub, type Hub, type Member } from './hub.ts';

/**
 * Imports the engine (graphql-js, graphql-yoga, graphql-ws, graphql-armor): on first use here, and
 * for what needs graphql-js itself (docs/schema.graphql's text: `schemaText`; tests: `compileSubscription`,
 * `subscriptionSchema`).
 */
export const loadGraphqlEngine = (): Promise<typeof import('./engine.ts')> => import('./engine.ts');

/**
 * Where the WebSockets are served (FLUX_GRAPHQL_SOCKETS): `process`, a process of their own
 * (runtime/graphql/socket-process.ts), `inline`, on FLUX's main thread, or `auto`: `process` on
 * `PROCESS_FROM_CORES` cores or more. On 2 cores the process kept the fan-out's 15 points of a core
 * off the pipeline's thread for ~3 more in all; on one core it would only compete with the pipeline
 * (docs/graphql.md "Where the sockets live").
 */
export type GraphqlSockets = 'auto' | 'process' | 'inline';
const PROCESS_FROM_CORES = 2;

/** WebSocket limits: connections, and the send buffer a slow subscriber may fill (runtime/graphql/outlet.ts); where the sockets live. */
export type GraphqlOptions = SubscriptionServerOptions & { sockets?: GraphqlSockets };

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

const forbidden = (role: string, needs: string) => new FluxError('forbidden', `this needs the ${needs} role; the token's role is ${role}`, 403);

/** The request's path, or '' when its target is not a path (`upgrade` listeners must not throw). */
function pathOf(req: http.IncomingMessage): string {
  try {
    return new URL(req.url ?? '/', 'http://x').pathname;
  } catch {
    return '';
  }
}

export function createGraphql(ctx: FluxContext, deps: GraphqlDeps, opts: GraphqlOptions = {}): Graphql {
  const log = ctx.log.child({ module: 'graphql' });
  const hub = createHub(deps.feed, { onRenderError: (err, topic) => log.error({ err, topic }, 'graphql: executing a subscription result failed') });
  const subscribers = gauge(ctx.metrics, 'flux_graphql_subscriptions', 'GraphQL subscriptions open');
  const groupsGauge = gauge(ctx.metrics, 'flux_graphql_subscription_groups', 'GraphQL subscription groups (one execution per event each)');
  const delivered = counter(ctx.metrics, 'flux_graphql_results_sent_total', 'GraphQL subscription results written to sockets');
  const droppedCounter = counter(ctx.metrics, 'flux_graphql_results_dropped_total', 'GraphQL subscription results a slow socket missed');
  const connections = gauge(ctx.metrics, 'flux_graphql_ws_connections', 'GraphQL WebSocket connections open');

  // The engine, imported and built on first use; `loaded` once it is there.
  let engine: Promise<GraphqlEngine> | undefined;
  let loaded: GraphqlEngine | undefined;
  let stopped = false;
  const loadEngine = (): Promise<GraphqlEngine> =>
    (engine ??= loadGraphqlEngine().then((m) => {
      loaded = m.createGraphqlEngine(ctx, deps, { hub, log, path: GRAPHQL_PATH, onConnections: (n) => connections.set(n), limits });
      log.debug('graphql: engine loaded on first use');
      return loaded;
    }, (err: unknown) => {
      engine = undefined; // the next request tries again
      throw err;
    }));
  const { sockets = 'auto', ...limits } = opts;
  const where = sockets === 'auto' ? (os.availableParallelism() >= PROCESS_FROM_CORES ? 'process' : 'inline') : sockets;
  const socketProcess =
    where === 'process'
      ? createSocketProcess({ feed: deps.feed, users: deps.users, log, path: GRAPHQL_PATH, logLevel: log.level, limits, run: (op) => loadEngine().then((e) => e.run(op)) })
      : undefined;
  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (socketProcess) {
      if (pathOf(req) === GRAPHQL_PATH) socketProcess.onUpgrade(req, socket, head);
      return;
    }
    if (loaded) return loaded.onUpgrade(req, socket, head);
    if (pathOf(req) !== GRAPHQL_PATH) return;
    // Node's HTTP server removed its error listener before `upgrade`; until ws takes the socket over, this one keeps an error from crashing the process.
    const onError = () => socket.destroy();
    socket.on('error', onError);
    loadEngine().then(
      (e) => {
        socket.off('error', onError);
        if (stopped || socket.destroyed) return void socket.destroy();
        e.onUpgrade(req, socket, head);
      },
      (err: unknown) => {
        socket.off('error', onError);
        log.error({ err }, 'graphql: could not load the engine');
        socket.end('HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n');
      },
    );
  };

  // Counters move by what the hub counted since the last tick: no metric call per delivery.
  let last = { delivered: 0, dropped: 0 };
  const stats = () => socketProcess?.stats() ?? { ...hub.stats(), connections: loaded?.connections() ?? 0 };
  const gaugeTimer = setInterval(() => {
    const s = stats();
    if (socketProcess) connections.set(s.connections);
    subscribers.set(s.subscriptions);
    groupsGauge.set(s.groups);
    // never negative (prom-client throws on a decrease): counts of a socket process that died stay in the totals
    delivered.inc(Math.max(0, s.delivered - last.delivered));
    droppedCounter.inc(Math.max(0, s.dropped - last.dropped));
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
  router.use(express.json({ limit: BODY_LIMIT }));
  // Any other body yoga parses itself (application/graphql, form-encoded, multipart), up to its own
  // 25 MB: read here within the same limit, and yoga parses the bytes.
  router.use(express.raw({ type: (req) => !(req as express.Request).is('application/json'), limit: BODY_LIMIT }));
  router.use((req, res, next) => {
    const principal = (req as unknown as { principal: Principal }).principal;
    if (loaded) return loaded.handle(req, res, principal);
    loadEngine().then((e) => e.handle(req, res, principal), next);
  });
  router.use(errorHandler(log));

  return {
    name: 'graphql',
    hub,
    mount(app) {
      app.use(GRAPHQL_PATH, router);
    },
    async start() {
      deps.server.on('upgrade', onUpgrade);
    },
    async stop() {
      stopped = true;
      deps.server.off('upgrade', onUpgrade);
      clearInterval(gaugeTimer);
      await socketProcess?.dispose();
      if (engine) await (await engine.catch(() => undefined))?.dispose();
      else hub.close();
    },
    health(): ComponentHealth {
      const s = stats();
      return { ok: true, sockets: where, subscriptions: s.subscriptions, groups: s.groups, connections: s.connections, delivered: s.delivered, dropped: s.dropped, failed: s.failed };
    },
  };
}
