/**
 * FLUX_FLOW_BATCH_MS: `flux device in` sends a batch at most that often, so under load the uplinks
 * of several event-loop turns share one batch message (docs/architecture.md "Batches through
 * Node-RED"); 0 sends one every turn. Uplinks come over HTTP, each request in a turn of its own.
 * And `flux store` with `flushMs: 0` writes the points of such a batch in one write.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';
import { metric, scrape } from '../../bench/lib/flux.ts';
import { until } from '../helpers/wait.ts';

const UPLINKS = 30;

async function batchesFor(flux: FluxProcess): Promise<{ batches: number; stored: number }> {
  assert.equal((await flux.api('POST', '/api/products', { key: 'meter', name: 'Meter', metadata: { properties: [{ id: 'n', type: 'int' }] } })).status, 201);
  const d = await flux.api('POST', '/api/devices', { id: 'm1', product_id: 'meter' });
  assert.equal(d.status, 201, JSON.stringify(d.body));
  const before = await scrape(flux);
  const t0 = Date.now();
  for (let n = 0; n < UPLINKS; n++) {
    const res = await fetch(`${flux.url}/api/devices/m1/uplink`, { method: 'POST', headers: { 'x-device-secret': d.body.secret, 'content-type': 'application/json' }, body: JSON.stringify({ values: { n }, ts: t0 + n }) });
    assert.equal(res.status, 202);
    await new Promise((r) => setTimeout(r, 10));
  }
  const range = async () => (await flux.api('GET', `/api/devices/m1/telemetry?metric=n&from=${t0}&to=${t0 + UPLINKS}&limit=100`)).body as { items?: unknown[] };
  await until(`all ${UPLINKS} uplinks stored`, async () => ((await range()).items?.length ?? 0) >= UPLINKS || undefined);
  const after = await scrape(flux);
  const count = (m: Map<string, number>, name: string) => metric(m, name);
  return {
    batches: count(after, 'flux_flow_batch_uplinks_count') - count(before, 'flux_flow_batch_uplinks_count'),
    stored: (await range()).items?.length ?? 0,
  };
}

describe('flux device in: a batch at most every FLUX_FLOW_BATCH_MS', function () {
  this.timeout(120_000);
  let flux: FluxProcess | undefined;
  afterEach(async () => {
    await flux?.stop();
    flux = undefined;
  });

  it('with 100 ms, 30 uplinks sent over ~0.4 s leave in a few batches, all stored', async () => {
    flux = await startFlux({ FLUX_FLOW_BATCH_MS: '100' });
    const { batches, stored } = await batchesFor(flux);
    assert.equal(stored, UPLINKS);
    assert.ok(batches >= 1 && batches <= 8, `${batches} batches for ${UPLINKS} uplinks`);
  });

  it('with 0, every turn sends its own batch: one per uplink here', async () => {
    flux = await startFlux({ FLUX_FLOW_BATCH_MS: '0' });
    const { batches, stored } = await batchesFor(flux);
    assert.equal(stored, UPLINKS);
    assert.equal(batches, UPLINKS);
  });

  it("flux store with flushMs 0 writes each batch's points together, at the end of the turn", async () => {
    flux = await startFlux({ FLUX_FLOW_BATCH_MS: '100' });
    // the default flow with the store's window set to 0
    const flows = JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '..', '..', 'flows', 'default.json'), 'utf8')) as { type: string; flushMs?: number }[];
    const store = flows.find((n) => n.type === 'flux store')!;
    store.flushMs = 0;
    const deploy = await fetch(`${flux.url}/editor/flows`, { method: 'POST', headers: { authorization: `Bearer ${flux.token}`, 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' }, body: JSON.stringify(flows) });
    assert.equal(deploy.status, 204);
    await new Promise((r) => setTimeout(r, 500));
    const { batches, stored } = await batchesFor(flux);
    assert.equal(stored, UPLINKS);
    assert.ok(batches <= 8, `${batches} batches`);
    // each uplink's store span names the write it was part of: batches of several uplinks were one write each
    const traces = (await flux.api('GET', '/api/devices/m1/trace?last=50')).body.items as { spans: { stage: string; detail?: { batch?: number } }[] }[];
    const writes = traces.flatMap((t) => t.spans.filter((sp) => sp.stage === 'store').map((sp) => sp.detail?.batch ?? 0));
    assert.equal(writes.length, UPLINKS);
    assert.ok(Math.max(...writes) > 1, `points per write: ${writes.join(', ')}`);
  });

  it('refuses a value out of its range at start', async () => {
    await assert.rejects(startFlux({ FLUX_FLOW_BATCH_MS: '101' }, { timeoutMs: 20_000 }), /FLUX_FLOW_BATCH_MS/);
  });
});
