/**
 * @module flow-engine — Node-RED embedded in FLUX's express server: the editor at /editor (admin
 * users, editor-auth.ts), flows in the data dir, `http in` endpoints served under
 * FLUX_FLOWS_HTTP_PREFIX (default /flows) with an auth choice each and listed at GET
 * /api/flows/openapi.json (http-endpoints.ts), and our node module (`nodes/`).
 *
 * Node-RED keeps module-level state, so one process hosts one flow engine.
 */
import fs from 'node:fs';
import path from 'node:path';
import type http from 'node:http';
import type express from 'express';
import { PROJECT_DIR, nodeRedSettings } from '../../settings.ts';
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import { histogram, tallyCounter } from '../metrics/index.ts';
import { FluxError } from '../errors/index.ts';
import { createPipelineTracker, type PipelineTracker } from './pipeline.ts';
import { deferCoreNodeLibraries, requireNodeRed } from './node-red-libraries.ts';
import { TIPS_PATH, paletteTipFilter } from './editor-tips.ts';
import { boundUnauthenticatedBodies, guardEditorLogin } from './editor-guard.ts';
import { limitEditorComms, patchNodeRedMetric } from '../patches/index.ts';
import { createLoginLimiter, type LoginLimiter } from '../login-limiter/index.ts';
import type { RouteTable } from '../api/index.ts';
import { FLOW_PATH_RESERVED, deployGuard, endpointAuth, endpointsOf, endpointsOpenApi, flowRequestBounds, refusals, type FlowEndpoint } from './http-endpoints.ts';
import type { PluginHost } from '../plugins/index.ts';
import type { Storage } from '../storage/index.ts';
import type { RuleEngine } from '../rules/index.ts';
import type { AlarmCenter } from '../alarms/index.ts';
import type { Feed } from '../feed/index.ts';
import type { Downlink } from '../ingress/index.ts';
import type { StreamService } from '../stream/index.ts';
import type { ModbusMaster } from '../modbus/index.ts';
import type { Users } from '../users/index.ts';
import { auditEditorLogin, auditFlowEvent, editorAuth } from './editor-auth.ts';
import type { PluginCompare } from '../plugin-compare/index.ts';
import type { NodeRedContextStore } from '../cluster/index.ts';
import { revisionOf, sharedStorageModule, type FlowSharing, type SharedStorage } from './shared-flows.ts';

export type { PipelineTracker } from './pipeline.ts';
export type { FlowSharing } from './shared-flows.ts';
export { BATCH_KEY, BATCH_NODE_TYPES, batchItems, batchMessage, type BatchItem } from './batch.ts';
export { FLOW_PATH_RESERVED, endpointsOf, refusals, type FlowEndpoint, type EndpointAuth } from './http-endpoints.ts';

export interface FlowEngine extends FluxModule {
  /** Mounts the editor; call before the server listens. */
  mountEditor(app: express.Express): void;
  /** Mounts flows' `http in` endpoints; only after start(): mounted earlier, Node-RED's `http in` node fails to load under express 5. */
  mountHttpNodes(app: express.Express): void;
  /** Resolves when the flows first run (Node-RED's `flows:started`), however long that takes. */
  running(): Promise<void>;
  /** The deployed flows (Node-RED's flow JSON, without credentials). */
  flows(): Promise<Record<string, unknown>[]>;
  /** Throws 400 `flow_path_reserved` naming each node and path that cannot be deployed (an http in path under FLUX's own, an unknown auth choice). */
  check(flows: Record<string, unknown>[]): void;
  /** Replaces every flow and deploys them (a full deploy, as the editor's Deploy does), after check(). */
  deploy(flows: Record<string, unknown>[]): Promise<void>;
  /** Cluster mode: runs the flows stored in the shared database when they differ from the running ones (another node deployed). */
  reload(): Promise<void>;
}

/** How long start() waits for the flows to run (Node-RED never starts them while node types are missing). */
const FLOWS_START_WAIT_MS = 15_000;

const LEVELS: Record<number, string> = { 10: 'fatal', 20: 'error', 30: 'warn', 40: 'info', 50: 'debug', 60: 'trace' };
export const DEFAULT_FLOW_FILE = path.join(PROJECT_DIR, 'flows', 'default.json');

/** The modules FLUX nodes may use, from the composition root. */
export interface NodeServices {
  plugins: PluginHost;
  storage: Storage;
  rules: RuleEngine;
  alarms: AlarmCenter;
  feed: Feed;
  downlink: Downlink;
  /** camera streams (`flux stream` node) */
  streams?: StreamService;
  /** the Modbus master (`flux modbus` node) */
  modbus?: ModbusMaster;
  /** replay and shadow mode (the `flux decode` dialog) */
  pluginCompare?: PluginCompare;
}

/**
 * The one typed handle FLUX nodes get, as `RED.settings.flux` (nodes/red.ts `fluxOf`): the context,
 * the modules they may use, and the flows' pipeline tracker (what `flux device in` hands each uplink
 * to, for backpressure and the latency histogram).
 */
export type FluxNodeHandle = FluxContext & NodeServices & { readonly pipeline: PipelineTracker };

export interface FlowEngineOptions {
  /** failed editor logins per client address (shared with the API's login, runtime/app) */
  loginLimiter?: LoginLimiter;
  /** who may sign in to the editor (admins) and where logins and deploys are recorded */
  users: Users;
  /** the API's route table: GET /api/flows/openapi.json lists the deployed flow endpoints */
  routes?: RouteTable;
  /** FLUX's version, for that document */
  version?: string;
  /** cluster mode: the flows are the shared database's (shared-flows.ts); unset, the data dir's */
  shared?: FlowSharing;
  /** cluster mode: the default context store, shared by every node (runtime/cluster); the in-memory one stays as the store `local` */
  sharedContext?: () => NodeRedContextStore;
}

export function createFlowEngine(ctx: FluxContext, server: http.Server, nodeServices: NodeServices, opts: FlowEngineOptions): FlowEngine {
  const loginLimiter = opts.loginLimiter ?? createLoginLimiter();
  const log = ctx.log.child({ module: 'flows' });
  const onLoad = (library: string) => log.info({ library }, 'loaded a deferred library on first use');
  const RED = requireNodeRed(onLoad);
  const userDir = path.join(ctx.settings.dataDir, 'node-red');
  let started = false;
  /** one reload at a time (notices and the reconciliation may ask at once) */
  let reloading: Promise<void> = Promise.resolve();
  let markRunning!: () => void;
  const running = new Promise<void>((resolve) => (markRunning = resolve));
  let stopped = false;
  /** cluster mode: Node-RED's storage module with the flows and credentials in the shared database */
  let sharedStorage: SharedStorage | undefined;
  const pipeline = createPipelineTracker(RED.hooks, {
    latency: histogram(ctx.metrics, 'flux_pipeline_latency_seconds', 'uplink received → finished in the flows (stored, filtered or failed)', [], [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2, 5, 10]),
    finished: tallyCounter(ctx.metrics, 'flux_pipeline_messages_total', 'uplinks that left the flows, by outcome (done, failed, expired)', ['outcome']),
  });
  const handle: FluxNodeHandle = { ...ctx, ...nodeServices, pipeline };
  const prefix = ctx.settings.flowsHttpPrefix;
  /** the deployed http in endpoints, refreshed whenever the flows (re)start */
  let endpoints: FlowEndpoint[] = [];
  const refreshEndpoints = () => {
    const nodes: Record<string, unknown>[] = [];
    RED.nodes.eachNode((n) => void nodes.push(n as unknown as Record<string, unknown>));
    endpoints = endpointsOf(nodes, prefix);
  };
  RED.events.on('flows:started', refreshEndpoints);
  opts.routes?.add({
    method: 'get', path: '/flows/openapi.json', tag: 'flows', role: 'viewer',
    summary: `The REST endpoints deployed flows expose (\`http in\` nodes, served under FLUX_FLOWS_HTTP_PREFIX, default /flows) as an OpenAPI 3.1 document: method, path, auth (\`x-flux-auth\`: public, device, token)`,
    returns: 'an OpenAPI 3.1 document',
    handler: () => endpointsOpenApi(endpoints, opts.version ?? '0'),
  });

  const engine: FlowEngine = {
    name: 'flows',
    mountEditor(app) {
      fs.mkdirSync(userDir, { recursive: true });
      const flowFile = path.join(userDir, 'flows.json');
      // The default flow is installed on first start only; afterwards the user's flows are kept.
      if (!fs.existsSync(flowFile) && fs.existsSync(DEFAULT_FLOW_FILE)) {
        fs.copyFileSync(DEFAULT_FLOW_FILE, flowFile);
        log.info({ flowFile }, 'installed the default flow');
      }
      // runtime/patches: a message path without metric records, and bounded editor comms frames
      if (!patchNodeRedMetric()) log.warn('Node-RED no longer has the shape runtime/patches/node-red-metric.ts patches: metrics records are built per message');
      if (!limitEditorComms()) log.warn('Node-RED no longer has the shape runtime/patches/node-red-comms-limit.ts patches: editor comms frames are not bounded');
      // a deploy refused because another node deployed first: load what is stored (after it, shared-flows.ts)
      const afterConflict = () => void engine.reload().catch((err: unknown) => log.warn({ err }, 'could not load the stored flows after a refused deploy'));
      sharedStorage = opts.shared && sharedStorageModule(opts.shared, log, afterConflict);
      const storage = sharedStorage ? { storageModule: sharedStorage } : {};
      // Node-RED's context: in memory (its default) on one node; in a cluster the shared store is the
      // default and the in-memory one is `local` (docs/cluster.md "Flows")
      const context = opts.sharedContext ? { contextStorage: { default: { module: opts.sharedContext }, local: { module: 'memory' } } } : {};
      RED.init(server, {
        ...storage,
        ...context,
        ...nodeRedSettings({
          userDir,
          credentialSecret: ctx.settings.credentialSecret,
          editorAuth: editorAuth(opts.users),
          flux: handle,
          httpNodeRoot: prefix,
          logHandler: (rec) => {
            if (auditFlowEvent(opts.users, rec)) return;
            const level = LEVELS[rec.level] ?? 'info';
            const msg = typeof rec.msg === 'string' ? rec.msg : rec.msg instanceof Error ? rec.msg.message : JSON.stringify(rec.msg);
            (log as unknown as Record<string, (o: object, m: string) => void>)[level]!({ node: rec.id, type: rec.type, name: rec.name }, msg);
          },
        }),
      });
      app.use(TIPS_PATH, paletteTipFilter());
      // Bounds on unauthenticated input before Node-RED sees it (editor-guard.ts).
      app.post('/editor/auth/token', ...guardEditorLogin(loginLimiter), auditEditorLogin(opts.users));
      app.use('/editor', boundUnauthenticatedBodies());
      // A deploy whose http in paths would shadow FLUX's own is refused, naming node and path: the
      // full deploy, and Node-RED's admin API for adding or replacing one flow.
      app.post('/editor/flows', ...deployGuard(prefix));
      app.post('/editor/flow', ...deployGuard(prefix));
      app.put('/editor/flow/:id', ...deployGuard(prefix));
      app.use('/editor', RED.httpAdmin);
    },
    mountHttpNodes(app) {
      app.use(prefix, flowRequestBounds({ timeoutMs: ctx.settings.flowsHttpTimeoutMs }), endpointAuth({ endpoints: () => endpoints, registry: ctx.registry, authenticate: (t) => opts.users.authenticate(t) }), RED.httpNode);
    },
    running: () => running,
    async flows() {
      return (await RED.runtime.flows.getFlows({})).flows;
    },
    check(flows) {
      const problems = refusals(flows, prefix);
      if (problems.length) throw new FluxError(FLOW_PATH_RESERVED, problems.join('; '), 400, { refusals: problems });
    },
    async deploy(flows) {
      this.check(flows);
      await RED.runtime.flows.setFlows({ flows: { flows }, deploymentType: 'full' });
    },
    reload() {
      const next = reloading.then(async () => {
        if (!opts.shared || !started || stopped) return;
        const stored = await opts.shared.store.read();
        if (!stored) return;
        // a deploy that changed only credentials keeps the flows' revision: compare those too
        const credentials = await opts.shared.store.readCredentials();
        const sameCredentials = credentials === null || revisionOf(credentials) === sharedStorage?.credentialsRev();
        if ((await RED.runtime.flows.getFlows({})).rev === stored.rev && sameCredentials) return;
        await RED.runtime.flows.setFlows({ deploymentType: 'reload' });
        log.info({ rev: stored.rev }, 'loaded the flows another node deployed');
      });
      reloading = next.catch(() => undefined);
      return next;
    },
    async start() {
      RED.events.once('flows:started', () => markRunning());
      // RED.start() resolves before the flows are loaded and started; `flux ready` (and a health
      // check right after it) must see them running, so wait for `flows:started`, bounded.
      let timer: NodeJS.Timeout | undefined;
      let onStarted: (() => void) | undefined;
      const flowsStarted = new Promise<boolean>((resolve) => {
        onStarted = () => resolve(true);
        RED.events.once('flows:started', onStarted);
        timer = setTimeout(() => resolve(false), FLOWS_START_WAIT_MS);
      });
      // The palette loads in RED.start(); flows never load core node files later.
      const deferred = deferCoreNodeLibraries(onLoad);
      try {
        await RED.start();
        if (!(await flowsStarted)) log.warn({ waited_ms: FLOWS_START_WAIT_MS }, 'the flows have not started yet (missing node types?); carrying on');
      } finally {
        deferred.deregister();
        clearTimeout(timer);
        RED.events.off('flows:started', onStarted!);
      }
      started = true;
    },
    async stop() {
      if (!started || stopped) return;
      stopped = true;
      await RED.stop();
      pipeline.close();
    },
    health(): ComponentHealth {
      if (!started) return { ok: false, state: 'not started' };
      let nodes = 0;
      try {
        RED.nodes.eachNode(() => void nodes++);
      } catch {
        return { ok: false, state: 'flows not loaded' };
      }
      return { ok: !stopped, state: stopped ? 'stopped' : 'running', nodes, in_flight: pipeline.inFlight() };
    },
  };
  return engine;
}
