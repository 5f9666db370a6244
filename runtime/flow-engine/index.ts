/**
 * @module flow-engine — Node-RED embedded in FLUX's express server: the editor at /editor (admin
 * token), flows in the data dir, `http in` endpoints served from / and our node module (`nodes/`).
 *
 * Node-RED keeps module-level state, so one process hosts one flow engine (STYLE "what to avoid").
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type http from 'node:http';
import type express from 'express';
import RED from 'node-red';
import { PROJECT_DIR, nodeRedSettings } from '../../settings.ts';
import { tokenEquals } from '../api/index.ts';
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import { counter, histogram } from '../metrics/index.ts';
import { createPipelineTracker, type PipelineTracker } from './pipeline.ts';
import { deferLibraries, type DeferredLibrary } from './deferred-libraries.ts';

export type { PipelineTracker } from './pipeline.ts';

export interface FlowEngine extends FluxModule {
  /** Mounts the editor; call before the server listens. */
  mountEditor(app: express.Express): void;
  /** Mounts flows' `http in` endpoints; only possible after start() (express 5, see environment notes). */
  mountHttpNodes(app: express.Express): void;
}

/** How long start() waits for the flows to run (Node-RED never starts them while node types are missing). */
const FLOWS_START_WAIT_MS = 15_000;

/**
 * Libraries of Node-RED's core nodes that load when a node first uses them, not with the palette
 * (./deferred-libraries.ts; ~20 MB of idle RSS, docs/operations.md "Memory"). Each entry says how the
 * nodes use it; one a node touches while the palette loads cannot be deferred (ajv: 70-JSON.js
 * builds `new Ajv()` at load).
 */
const DEFERRED_CORE_LIBRARIES: Record<string, DeferredLibrary> = {
  // 21-httprequest.js: `const { got } = await import('got')`, then `got(url, opts).then(…)` per request
  got: { asyncFunctions: ['got'] },
  // 21-httprequest.js: `const { CookieJar } = require(…)`, `new CookieJar()` per request
  'tough-cookie': { members: ['CookieJar'] },
  // 21-httprequest.js: `new FormData()` for a multipart body
  'form-data': { callable: true },
  // 21-httprequest.js: `const { HttpProxyAgent, HttpsProxyAgent } = require(…)`, `new …()` behind a proxy
  hpagent: { members: ['HttpProxyAgent', 'HttpsProxyAgent'] },
  // 70-HTML.js: `cheerio.load()` per message
  cheerio: {},
  // 70-XML.js: `xml2js.parseString` read at load and called per message; `new xml2js.Builder()`
  xml2js: { members: ['parseString'] },
  // 10-mqtt.js: `mqtt.connect()` when a broker config node connects
  mqtt: {},
  // 10-mqtt.js, 22-websocket.js: `new HttpsProxyAgent()` behind a proxy
  'https-proxy-agent': { callable: true },
  // 21-httpin.js: `multer({ storage: multer.memoryStorage() })` for an endpoint accepting uploads
  multer: { callable: true },
  // 10-function.js: `acornWalk.simple(acorn.parse(…))` for a function whose code calls node.done()
  acorn: {},
  'acorn-walk': {},
  // 70-YAML.js, 80-template.js: `yaml.load()`/`yaml.dump()` per message
  'js-yaml': {},
  // 22-websocket.js: `new ws(…)`, `new ws.Server(…)`, `ws.CLOSED` when a websocket node starts or closes
  ws: { callable: true },
};
const CORE_NODES_DIR = path.join(path.dirname(createRequire(createRequire(import.meta.url).resolve('node-red')).resolve('@node-red/nodes')), 'core');

const LEVELS: Record<number, string> = { 10: 'fatal', 20: 'error', 30: 'warn', 40: 'info', 50: 'debug', 60: 'trace' };
export const DEFAULT_FLOW_FILE = path.join(PROJECT_DIR, 'flows', 'default.json');

export function createFlowEngine(ctx: FluxContext, server: http.Server): FlowEngine {
  const log = ctx.log.child({ module: 'flows' });
  const userDir = path.join(ctx.settings.dataDir, 'node-red');
  let started = false;
  let stopped = false;
  let pipeline: (PipelineTracker & { close(): void }) | undefined;

  return {
    name: 'flows',
    mountEditor(app) {
      fs.mkdirSync(userDir, { recursive: true });
      const flowFile = path.join(userDir, 'flows.json');
      // The default flow is installed on first start only; afterwards the user's flows are kept.
      if (!fs.existsSync(flowFile) && fs.existsSync(DEFAULT_FLOW_FILE)) {
        fs.copyFileSync(DEFAULT_FLOW_FILE, flowFile);
        log.info({ flowFile }, 'installed the default flow');
      }
      RED.init(
        server,
        nodeRedSettings({
          userDir,
          adminToken: ctx.adminToken,
          flux: ctx,
          tokenEquals,
          logHandler: (rec) => {
            const level = LEVELS[rec.level] ?? 'info';
            const msg = typeof rec.msg === 'string' ? rec.msg : rec.msg instanceof Error ? rec.msg.message : JSON.stringify(rec.msg);
            (log as unknown as Record<string, (o: object, m: string) => void>)[level]!({ node: rec.id, type: rec.type, name: rec.name }, msg);
          },
        }),
      );
      app.use('/editor', RED.httpAdmin);
      pipeline = createPipelineTracker(RED.hooks, {
        latency: histogram(ctx.metrics, 'flux_pipeline_latency_seconds', 'uplink received → finished in the flows (stored, filtered or failed)', [], [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2, 5, 10]),
        finished: counter(ctx.metrics, 'flux_pipeline_messages_total', 'uplinks that left the flows, by outcome (done, failed, expired)', ['outcome']),
      });
      ctx.services.set('pipeline', pipeline);
    },
    mountHttpNodes(app) {
      app.use('/', RED.httpNode);
    },
    async start() {
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
      const deferred = deferLibraries(CORE_NODES_DIR, DEFERRED_CORE_LIBRARIES, (library) => log.info({ library }, 'a core node loaded its library on first use'));
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
      pipeline?.close();
      ctx.services.delete('pipeline');
    },
    health(): ComponentHealth {
      if (!started) return { ok: false, state: 'not started' };
      let nodes = 0;
      try {
        RED.nodes.eachNode(() => void nodes++);
      } catch {
        return { ok: false, state: 'flows not loaded' };
      }
      return { ok: !stopped, state: stopped ? 'stopped' : 'running', nodes, in_flight: pipeline?.inFlight() ?? 0 };
    },
  };
}
