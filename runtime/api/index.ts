/**
 * @module api — the REST API under /api (docs/api.md): one route table that validates with
 * zod, maps errors to `{ error: { code, message } }` and publishes its own OpenAPI document.
 * Feature modules add their routes with `api.routes.add(...)` before `mount()`.
 */
import express from 'express';
import type { FluxContext, ComponentHealth } from '../app/context.ts';
import { RouteTable } from './routes.ts';
import { errorHandler } from './errors.ts';
import { clientAddress, principalOf, requireRole } from './auth.ts';
import { userRoutes } from './users.ts';
import { bearerToken, type Users } from '../users/index.ts';
import type { LoginLimiter } from '../login-limiter/index.ts';
import { productRoutes } from './products.ts';
import { pluginRoutes } from './plugins.ts';
import { deviceRoutes } from './devices.ts';
import { deviceAccessRoutes } from './device-access.ts';
import { traceRoutes } from './trace.ts';
import { ruleRoutes } from './rules.ts';
import { alarmRoutes } from './alarms.ts';
import { telemetryRoutes } from './telemetry.ts';
import { rawRoutes } from './raw.ts';
import type { UplinkLog } from '../uplink-log/index.ts';
import { modbusRoutes } from './modbus.ts';
import type { ModbusMaster } from '../modbus/index.ts';
import type { PluginHost } from '../plugins/index.ts';
import type { RuleEngine } from '../rules/index.ts';
import type { AlarmCenter } from '../alarms/index.ts';
import type { Storage } from '../storage/index.ts';
import type { Downlink } from '../ingress/index.ts';
import { pluginCompareRoutes } from './plugin-compare.ts';
import type { PluginCompare } from '../plugin-compare/index.ts';
import { notFound } from '../errors/index.ts';
import { localTraceLookup, type TraceLookup } from '../trace/index.ts';

export { RouteTable, q, formatZodError, parseBody, type RouteSpec } from './routes.ts';
export { productWrites, type ProductWrites } from './products.ts';
export { deviceWrites, type DeviceWrites } from './devices.ts';
export { createReferences, type References, type PluginsLike } from './references.ts';
export { requireRole, tokenEquals, hasBearer, principalOf, clientAddress } from './auth.ts';
export { errorHandler } from './errors.ts';
export * as schemas from './schemas.ts';

export interface Api {
  readonly routes: RouteTable;
  /** Builds the express router with every route added so far. */
  router(): express.Router;
}

export interface ApiOptions {
  /** health of every component, gathered by the composition root */
  health(): Promise<Record<string, ComponentHealth>>;
  version: string;
}

/** The modules behind the routes, from the composition root. */
export interface ApiServices {
  plugins: PluginHost;
  rules: RuleEngine;
  alarms: AlarmCenter;
  storage: Storage;
  downlink: Downlink;
  /** the durable uplink log, for raw traffic */
  uplinkLog: UplinkLog;
  /** the Modbus master, for /api/modbus */
  modbus?: ModbusMaster;
  /** users, tokens and the audit log: who may call which route */
  users: Users;
  /** failed logins per address (shared with the editor's login) */
  loginLimiter: LoginLimiter;
  /** replay and shadow mode, for /api/plugins/{id}/replay and /shadow */
  pluginCompare?: PluginCompare;
  /** message traces beyond this process's (cluster mode: every node's); this node's otherwise */
  traces?: TraceLookup;
}

export function createApi(ctx: FluxContext, services: ApiServices, opts: ApiOptions): Api {
  const routes = new RouteTable();
  /** the OpenAPI document as sent, built at the first request */
  let openapi: string | undefined;
  productRoutes(ctx, routes, services.plugins);
  deviceRoutes(ctx, routes);
  deviceAccessRoutes(ctx, routes, services.downlink);
  traceRoutes(ctx, routes, services.traces ?? localTraceLookup(ctx.trace));
  ruleRoutes(ctx, routes, services.rules);
  alarmRoutes(ctx, routes, services.alarms);
  pluginRoutes(ctx, routes, services.plugins);
  telemetryRoutes(ctx, routes, services.storage);
  rawRoutes(ctx, routes, services.uplinkLog);
  if (services.modbus) modbusRoutes(services.modbus, routes);
  userRoutes(services.users, routes, services.loginLimiter);
  if (services.pluginCompare) pluginCompareRoutes(routes, services.pluginCompare);
  routes
    .add({
      method: 'get', path: '/health', tag: 'system', auth: false, errors: [503],
      summary: 'Liveness: `{ status }` (`ok` or `degraded`) without a token; with the bearer token also the version, uptime and each component (ports, paths, counts); 503 when one is down',
      handler: async ({ req, res }) => {
        const components = await opts.health();
        const ok = Object.values(components).every((c) => c.ok);
        const status = ok ? 'ok' : 'degraded';
        // Ports, file paths and versions help an attacker more than a load balancer: they need the token.
        const token = bearerToken(req.headers.authorization);
        // A database that is down answers the status only, never a 500 (the admin token needs no database).
        const who = token ? await services.users.authenticate(token).catch(() => null) : null;
        if (!who) res.status(ok ? 200 : 503).json({ status });
        else res.status(ok ? 200 : 503).json({ status, version: opts.version, uptime_s: Math.round(process.uptime()), components });
        return res;
      },
    })
    .add({
      method: 'get', path: '/metrics', tag: 'system', role: 'viewer', summary: 'Prometheus metrics (text exposition format)',
      handler: async ({ res }) => {
        res.type(ctx.metrics.contentType).send(await ctx.metrics.metrics());
        return res;
      },
    })
    .add({
      method: 'get', path: '/openapi.json', tag: 'system', summary: 'This API as an OpenAPI 3.1 document', auth: false,
      handler: ({ res }) => {
        // Built once: anyone may ask, a build costs 15-60 ms of the main thread, and the table is complete once it mounts.
        openapi ??= JSON.stringify(routes.openapi({ title: 'FLUX IOT API', version: opts.version }));
        res.type('json').send(openapi);
        return res;
      },
    });

  return {
    routes,
    router() {
      const router = express.Router();
      // No router-wide body parser: each route reads its body after authentication (routes.ts).
      const { audit } = services.users;
      routes.mount(router, (route, role) => {
        const check = requireRole(services.users, role, { queryToken: route.queryToken });
        if (route.method === 'get') return check;
        // Every change through the API goes to the audit log, refused ones (403, 4xx) included,
        // once a token identified who made it.
        return (req, res, next) => {
          res.once('finish', () => {
            const p = principalOf(req);
            if (p) audit.record({ username: p.username, role: p.role, action: `${route.method.toUpperCase()} ${route.path}`, target: req.originalUrl.split('?')[0], status: res.statusCode, address: clientAddress(req) });
          });
          check(req, res, next);
        };
      });
      router.use((req, _res, next) => next(notFound('API path', `${req.method} ${req.baseUrl}${req.path}`)));
      router.use(errorHandler(ctx.log.child({ module: 'api' })));
      return router;
    },
  };
}
