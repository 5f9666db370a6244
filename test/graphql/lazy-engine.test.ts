/**
 * GraphQL's engine and the cluster packages are not loaded while FLUX idles (docs/operations.md
 * "Memory"), and the first GraphQL use after start works: a subscription over a real WebSocket
 * (graphql-ws) and a query over HTTP, sent together as the first GraphQL requests of a fresh
 * `flux` process. Which modules the process loaded is read from inside it
 * (test/helpers/module-recorder.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from 'graphql-ws';
import { ROOT, startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { connectDevice, waitFor } from '../rules/helpers.ts';
import { collect, gqlData, wsClient } from './helpers.ts';

const RECORDER = path.join(ROOT, 'test', 'helpers', 'module-recorder.ts');
const GRAPHQL_LIBRARIES = /\/node_modules\/(graphql|graphql-yoga|graphql-ws|@graphql-tools\/[^/]+|@envelop\/core|@escape\.tech\/graphql-armor|dataloader)\//;
const CLUSTER_LIBRARIES = /\/node_modules\/(ioredis|aedes-persistence-redis|mqemitter-redis|@nats-io\/[^/]+)\//;

describe('GraphQL engine loaded on first use (real process)', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let client: Client | undefined;

  /** the module URLs the FLUX process has loaded so far (code: Node-RED reads every package's package.json while it scans node_modules) */
  async function loadedModules(): Promise<string[]> {
    const file = path.join(flux.dataDir, 'loaded-modules.json');
    fs.rmSync(file, { force: true });
    flux.child.kill('SIGUSR2');
    await waitFor('the module list', async () => fs.existsSync(file));
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as string[]).filter((u) => !u.endsWith('/package.json'));
  }

  before(async () => {
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn', NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${RECORDER}`.trim() });
  });
  after(async () => {
    await client?.dispose();
    await flux?.stop();
  });

  it('loads neither the GraphQL libraries nor the cluster packages at start', async () => {
    const modules = await loadedModules();
    assert.ok(modules.some((u) => u.includes('/node_modules/express/')), 'the recorder sees the libraries FLUX loads');
    assert.deepEqual(modules.filter((u) => GRAPHQL_LIBRARIES.test(u)), []);
    assert.deepEqual(modules.filter((u) => CLUSTER_LIBRARIES.test(u)), []);
  });

  it('answers the first subscription (WebSocket) and query (HTTP) after start, sent together', async () => {
    const secret = (await flux.api('POST', '/api/devices', { id: 'lazy1', product_id: (await flux.api('POST', '/api/products', { key: 'lazyp', name: 'Lazy' })).body.key })).body.secret;
    client = wsClient(flux.url, { authorization: `Bearer ${flux.token}` });
    const sub = collect(client, 'subscription { telemetry(device_id: "lazy1") { device_id values } }');
    const query = gqlData(flux.url, flux.token, '{ devices { items { id } } }');
    assert.deepEqual((await query).devices.items.map((d: { id: string }) => d.id), ['lazy1']);
    await waitFor('the subscription', async () => (await flux.api('GET', '/api/health')).body.components?.graphql?.subscriptions === 1);
    const device = await connectDevice(flux, 'lazy1', secret);
    await device.publishAsync('/lazyp/lazy1/properties/report', JSON.stringify({ values: { t: 3 } }), { qos: 1 });
    assert.deepEqual((await sub.next(1))[0].data.telemetry, { device_id: 'lazy1', values: { t: 3 } });
    sub.stop();
    await device.endAsync();
    assert.ok((await loadedModules()).some((u) => GRAPHQL_LIBRARIES.test(u)), 'the engine is loaded now');
  });
});
