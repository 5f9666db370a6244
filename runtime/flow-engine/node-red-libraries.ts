/**
 * Libraries Node-RED requires while it and its palette load, but uses only for a feature a flow may
 * never use: they load on first use instead (runtime/patches/module-deferral.ts; docs/operations.md
 * "Memory"). Each table entry says how the requiring file uses the library; a library a file really
 * uses while loading cannot be deferred.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type NodeRed from 'node-red';
import { deferLibraries, type DeferredLibrary, type DeferringHooks } from '../patches/index.ts';

/** The core nodes' libraries (~20 MB of idle RSS together), by the package name they require. */
const DEFERRED_CORE_LIBRARIES: Record<string, DeferredLibrary> = {
  // 70-JSON.js: `new Ajv()` and `ajv.addMetaSchema(draft-06)` at load, `ajv.compile()` for a message with a schema
  ajv: { callable: true, recordedCalls: ['addMetaSchema'] },
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
const requireFromNodeRed = createRequire(createRequire(import.meta.url).resolve('node-red'));
const nodeRedPackageDir = (name: string) => path.dirname(requireFromNodeRed.resolve(`${name}/package.json`));
const CORE_NODES_DIR = path.join(nodeRedPackageDir('@node-red/nodes'), 'core');

/** Libraries of Node-RED's own packages: directory of the requiring file → its libraries. */
const DEFERRED_NODE_RED_LIBRARIES: [string, Record<string, DeferredLibrary>][] = [
  // util.js: `jsonata(expr)` for a node property of type JSONata
  [path.join(nodeRedPackageDir('@node-red/util'), 'lib'), { './jsonata': { callable: true } }],
  // installer.js: `tar.x()` to install an uploaded palette module (FLUX disallows installs)
  [path.join(nodeRedPackageDir('@node-red/registry'), 'lib'), { tar: {} }],
  // auth/users.js: `bcrypt.compare()` for users with a password hash (FLUX's adminAuth takes the token)
  [path.join(nodeRedPackageDir('@node-red/editor-api'), 'lib', 'auth'), { '@node-rs/bcrypt': {} }],
];

/**
 * Node-RED, required when a flow engine is created rather than when this module is imported (FLUX
 * without flows, as in the in-process tests, never loads it).
 */
export function requireNodeRed(onLoad: (library: string) => void): typeof NodeRed {
  const deferred = DEFERRED_NODE_RED_LIBRARIES.map(([dir, libraries]) => deferLibraries(dir, libraries, onLoad));
  try {
    return createRequire(import.meta.url)('node-red') as typeof NodeRed;
  } finally {
    for (const d of deferred) d.deregister();
  }
}

/** Defers the core nodes' libraries; register it around `RED.start()`, which loads the palette. */
export function deferCoreNodeLibraries(onLoad: (library: string) => void): DeferringHooks {
  return deferLibraries(CORE_NODES_DIR, DEFERRED_CORE_LIBRARIES, onLoad);
}
