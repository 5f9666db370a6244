/**
 * The core nodes whose libraries FLUX defers until first use (runtime/flow-engine/index.ts; also
 * Node-RED's JSONata engine) still work in a real flow: a running FLUX, a deployed flow, a local HTTP server for `http request` and
 * a local CONNECT proxy for the proxy agents (FLUX runs with http_proxy and ws_proxy set and
 * 127.0.0.1 exempt, so only the flow's connections to "localhost" go through the proxy).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import mqtt from 'mqtt';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';

const LOADED = /"library":"([^"]+)".*loaded a deferred library on first use/g;
const loadedLibraries = (flux: FluxProcess) => [...flux.output().matchAll(LOADED)].map((m) => m[1]!);

/** Pages `http request` fetches: HTML (with a cookie for its cookie jar), XML, YAML. */
function startSite(): Promise<http.Server> {
  const pages: Record<string, [string, string]> = {
    '/page.html': ['text/html', '<html><body><ul><li>one</li><li>two</li></ul></body></html>'],
    '/data.xml': ['application/xml', '<root><v>42</v><v>43</v></root>'],
    '/data.yaml': ['text/yaml', 'a: 1\nlist: [x, y]\n'],
  };
  const server = http.createServer((req, res) => {
    const page = pages[req.url ?? ''];
    if (!page) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': page[0], 'set-cookie': 'visited=1; Path=/' }).end(page[1]);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** A CONNECT proxy recording the host:port of each tunnel. */
function startProxy(): Promise<{ server: http.Server; tunnels: string[] }> {
  const tunnels: string[] = [];
  const server = http.createServer((_req, res) => res.writeHead(405).end());
  server.on('connect', (req, client: net.Socket, head) => {
    tunnels.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const upstream = net.connect(Number(port), host!, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client).pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, tunnels })));
}

const port = (s: http.Server) => (s.address() as AddressInfo).port;

function flow(sitePort: number, flux: FluxProcess): object[] {
  const site = `http://127.0.0.1:${sitePort}`;
  const z = 'deferred-tab';
  const n = (id: string, type: string, props: object, wires: string[][] = []) => ({ id, type, z, wires, ...props });
  const httpIn = (id: string, url: string, next: string, props: object = {}) => n(id, 'http in', { url, method: 'get', upload: false, swaggerDoc: '', ...props }, [[next]]);
  const request = (id: string, url: string, next: string, props: object = {}) =>
    n(id, 'http request', { method: 'GET', ret: 'txt', paytoqs: 'ignore', url, tls: '', persist: false, proxy: '', insecureHTTPParser: false, authType: '', senderr: false, headers: [], ...props }, [[next]]);
  const broker = {
    id: 'flux-broker',
    type: 'mqtt-broker',
    broker: '127.0.0.1',
    port: String(flux.mqtt),
    clientid: '',
    autoConnect: true,
    usetls: false,
    protocolVersion: '4',
    keepalive: '60',
    cleansession: true,
    credentials: { user: 'flow', password: flux.token },
  };
  const fn = (id: string, func: string, next: string) => n(id, 'function', { func, outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [] }, [[next]]);
  return [
    { id: z, type: 'tab', label: 'deferred libraries' },
    n('respond', 'http response', { statusCode: '', headers: {} }),
    // got + tough-cookie, then cheerio
    httpIn('html-in', '/deferred/html', 'html-get'),
    request('html-get', `${site}/page.html`, 'html-pick'),
    n('html-pick', 'html', { property: 'payload', outproperty: 'payload', tag: 'li', ret: 'text', as: 'single', chr: '' }, [['respond']]),
    // xml2js: parseString (text → object), then Builder (object → text)
    httpIn('xml-in', '/deferred/xml', 'xml-get'),
    request('xml-get', `${site}/data.xml`, 'xml-parse'),
    n('xml-parse', 'xml', { property: 'payload', attr: '', chr: '' }, [['xml-keep']]),
    n('xml-keep', 'change', { rules: [{ t: 'set', p: 'parsed', pt: 'msg', to: 'payload', tot: 'msg' }] }, [['xml-build']]),
    n('xml-build', 'xml', { property: 'payload', attr: '', chr: '' }, [['xml-both']]),
    fn('xml-both', 'msg.payload = { parsed: msg.parsed, built: msg.payload };\nreturn msg;', 'respond'),
    // js-yaml
    httpIn('yaml-in', '/deferred/yaml', 'yaml-get'),
    request('yaml-get', `${site}/data.yaml`, 'yaml-parse'),
    n('yaml-parse', 'yaml', { property: 'payload' }, [['respond']]),
    // form-data (multipart request) → multer (upload endpoint) → acorn (a function calling node.done())
    httpIn('multipart-in', '/deferred/multipart', 'multipart-make'),
    fn(
      'multipart-make',
      "msg.headers = { 'content-type': 'multipart/form-data' };\nmsg.payload = { field: 'x', file: { value: Buffer.from('file body'), options: { filename: 'a.txt', contentType: 'text/plain' } } };\nreturn msg;",
      'multipart-post',
    ),
    request('multipart-post', `${flux.url}/flows/deferred/upload`, 'respond', { method: 'POST', ret: 'obj' }),
    httpIn('upload-in', '/deferred/upload', 'upload-read', { method: 'post', upload: true }),
    fn('upload-read', 'const f = msg.req.files[0];\nmsg.payload = { field: msg.payload.field, name: f.originalname, body: f.buffer.toString() };\nnode.send(msg);\nnode.done();', 'respond'),
    // ajv: a draft-06 schema (the meta-schema 70-JSON.js adds while loading, replayed on first use)
    httpIn('json-in', '/deferred/json', 'json-make'),
    fn('json-make', `msg.payload = '{"a":1}';\nmsg.schema = { $schema: 'http://json-schema.org/draft-06/schema#', type: 'object', required: ['a'], properties: { a: { const: 1 } } };\nreturn msg;`, 'json-check'),
    n('json-check', 'json', { property: 'payload', action: 'obj', pretty: false }, [['json-valid']]),
    fn('json-valid', 'msg.payload = { parsed: msg.payload, schemaError: msg.schemaError ?? null };\ndelete msg.schema;\nreturn msg;', 'respond'),
    // mqtt: published to FLUX's own broker as a platform client; the payload is JSONata (jsonata)
    httpIn('mqtt-in', '/deferred/mqtt', 'mqtt-set'),
    n('mqtt-set', 'change', { rules: [{ t: 'set', p: 'payload', pt: 'msg', to: '"hello from " & "mqtt out"', tot: 'jsonata' }] }, [['mqtt-out', 'respond']]),
    n('mqtt-out', 'mqtt out', { topic: 'flux-test/deferred', qos: '1', retain: 'false', broker: 'flux-broker' }),
    broker,
    // ws: an echo on a websocket listener
    { id: 'ws-listener', type: 'websocket-listener', path: '/deferred/ws', wholemsg: 'false' },
    n('ws-in', 'websocket in', { server: 'ws-listener', client: '' }, [['ws-out']]),
    n('ws-out', 'websocket out', { server: 'ws-listener', client: '' }),
    // hpagent: http request to "localhost", through the proxy
    httpIn('proxied-in', '/deferred/proxied', 'proxied-get'),
    request('proxied-get', `http://localhost:${sitePort}/page.html`, 'html-pick'),
    // https-proxy-agent: mqtt out to the broker's MQTT over WebSocket at "localhost", through the proxy
    httpIn('mqtt-ws-in', '/deferred/mqtt-ws', 'mqtt-ws-set'),
    n('mqtt-ws-set', 'change', { rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'through the proxy', tot: 'str' }] }, [['mqtt-ws-out', 'respond']]),
    n('mqtt-ws-out', 'mqtt out', { topic: 'flux-test/deferred-ws', qos: '1', retain: 'false', broker: 'flux-broker-ws' }),
    { ...broker, id: 'flux-broker-ws', broker: `ws://localhost:${flux.http}/mqtt`, port: '' },
    // answers once the deployed nodes run (deploying answers before they start)
    httpIn('ready-in', '/deferred/ready', 'respond'),
  ];
}

describe('core nodes with deferred libraries', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let site: http.Server;
  let proxy: { server: http.Server; tunnels: string[] };
  // bounded: a node failing on its message answers nothing
  const get = async (p: string) => {
    const res = await fetch(flux.url + '/flows' + p, { signal: AbortSignal.timeout(10_000) });
    assert.equal(res.status, 200, `${p}: ${await res.clone().text()}`);
    return res.json();
  };

  /** Subscribes to `topic`, then calls the flow's `endpoint` until a message arrives (its broker node may still be connecting). */
  const receiveFromFlow = async (topic: string, endpoint: string) => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { username: 'test', password: flux.token, reconnectPeriod: 0 });
    try {
      let received: string | undefined;
      client.on('message', (_t, payload) => (received ??= payload.toString()));
      await client.subscribeAsync(topic, { qos: 1 });
      return await until(`a message on ${topic}`, async () => {
        if (received === undefined) await fetch(flux.url + '/flows' + endpoint);
        return received;
      });
    } finally {
      await client.endAsync();
    }
  };

  before(async function () {
    site = await startSite();
    proxy = await startProxy();
    const proxyUrl = `http://127.0.0.1:${port(proxy.server)}`;
    flux = await startFlux({ http_proxy: proxyUrl, ws_proxy: proxyUrl, no_proxy: '127.0.0.1' });
  });

  after(async function () {
    await flux?.stop();
    site?.close();
    proxy?.server.close();
  });

  it('loads none of them while the default flow runs', function () {
    assert.deepEqual(loadedLibraries(flux), []);
  });

  describe('in a deployed flow', function () {
    before(async function () {
      const auth = { authorization: `Bearer ${flux.token}` };
      const current = (await (await fetch(`${flux.url}/editor/flows`, { headers: auth })).json()) as object[];
      const res = await fetch(`${flux.url}/editor/flows`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
        body: JSON.stringify([...current, ...flow(port(site), flux)]),
      });
      assert.equal(res.status, 204, await res.text());
      await until('the deployed flow', async () => ((await fetch(flux.url + '/flows/deferred/ready')).status === 200 ? true : undefined));
    });

    it('fetches a page with http request (got, tough-cookie) and picks it apart with html (cheerio)', async function () {
      assert.deepEqual(await get('/deferred/html'), ['one', 'two']);
    });

    it('parses fetched XML into an object and builds XML from it again (xml2js)', async function () {
      const body = (await get('/deferred/xml')) as { parsed: unknown; built: string };
      assert.deepEqual(body.parsed, { root: { v: ['42', '43'] } });
      assert.match(body.built, /<root>\s*<v>42<\/v>\s*<v>43<\/v>\s*<\/root>/);
    });

    it('parses fetched YAML (js-yaml)', async function () {
      assert.deepEqual(await get('/deferred/yaml'), { a: 1, list: ['x', 'y'] });
    });

    it('posts a multipart body (form-data) to an upload endpoint (multer) whose function calls node.done() (acorn)', async function () {
      assert.deepEqual(await get('/deferred/multipart'), { field: 'x', name: 'a.txt', body: 'file body' });
    });

    it('parses JSON and validates it against a draft-06 schema (ajv)', async function () {
      assert.deepEqual(await get('/deferred/json'), { parsed: { a: 1 }, schemaError: null });
    });

    it('publishes to the embedded broker with mqtt out (mqtt) a payload set by JSONata (jsonata)', async function () {
      assert.equal(await receiveFromFlow('flux-test/deferred', '/deferred/mqtt'), 'hello from mqtt out');
    });

    it('echoes over a websocket listener (ws)', async function () {
      const ws = new WebSocket(`ws://127.0.0.1:${flux.http}/flows/deferred/ws`);
      const echo = new Promise<string>((resolve, reject) => {
        ws.onmessage = (e) => resolve(String(e.data));
        ws.onerror = () => reject(new Error('websocket error'));
      });
      await new Promise((resolve) => (ws.onopen = resolve));
      ws.send('ping');
      assert.equal(await echo, 'ping');
      ws.close();
    });

    it('fetches a page through a proxy with http request (hpagent)', async function () {
      assert.deepEqual(await get('/deferred/proxied'), ['one', 'two']);
      assert.ok(proxy.tunnels.includes(`localhost:${port(site)}`), `tunnels: ${proxy.tunnels.join(', ')}`);
    });

    it('publishes over MQTT over WebSocket through a proxy with mqtt out (https-proxy-agent)', async function () {
      assert.equal(await receiveFromFlow('flux-test/deferred-ws', '/deferred/mqtt-ws'), 'through the proxy');
      assert.ok(proxy.tunnels.includes(`localhost:${flux.http}`), `tunnels: ${proxy.tunnels.join(', ')}`);
    });

    it('logged each library once, when a node first used it', function () {
      const loaded = loadedLibraries(flux);
      const all = ['got', 'tough-cookie', 'cheerio', 'xml2js', 'js-yaml', 'form-data', 'multer', 'acorn', 'acorn-walk', 'ajv', 'mqtt', './jsonata', 'ws', 'hpagent', 'https-proxy-agent'];
      assert.deepEqual([...loaded].sort(), all.sort());
    });
  });
});
