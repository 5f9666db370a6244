/**
 * The uplink log seen from outside: raw frames of a device as received (with their trace), and a
 * log whose budget is filled by unprocessed uplinks refusing new ones with a reason, then
 * accepting again, without losing anything it acknowledged.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import mqtt from 'mqtt';
import { startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';

const FRAME = '01030201c50000';

describe('uplink log: raw traffic API and a full log', function () {
  this.timeout(180_000);
  let flux: FluxProcess | undefined;
  afterEach(async () => {
    await flux?.stop();
    flux = undefined;
  });

  it('GET /api/devices/{id}/raw answers the frames as received, newest last, paginated, each linked to its trace', async () => {
    flux = await startFlux({}, { timeoutMs: 60_000 });
    assert.equal((await flux.api('POST', '/api/products', { key: 'boiler', name: 'Boiler', protocol_plugin_id: 'modbus' })).status, 201);
    const dev = await flux.api('POST', '/api/devices', { id: 'sensor_1', product_id: 'boiler' });
    const file = path.join(tempDir('flux-raw-'), 'frame.bin');
    for (let i = 0; i < 3; i++) {
      fs.writeFileSync(file, Buffer.from(FRAME.slice(0, 8) + String(i).padStart(2, '0') + '0000', 'hex'));
      const r: { status: number | null; stderr: string } = spawnSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(flux.mqtt), '-u', 'sensor_1', '-P', dev.body.secret, '-i', 'sensor_1', '-q', '1', '-t', '/boiler/sensor_1/properties/report', '-f', file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    }
    const all = await until('three raw frames', async () => {
      const r = await flux!.api('GET', '/api/devices/sensor_1/raw');
      return r.body.items?.length === 3 ? r.body : undefined;
    });
    assert.deepEqual(all.items.map((i: { payload: string }) => i.payload), ['01030201000000', '01030201010000', '01030201020000']);
    const first = all.items[0];
    assert.equal(first.transport, 'mqtt');
    assert.equal(first.topic, '/boiler/sensor_1/properties/report');
    assert.equal(first.bytes, 7);
    const trace = await flux.api('GET', first.trace);
    assert.equal(trace.status, 200, 'the raw frame links to its trace');
    assert.equal(trace.body.id, first.msg_id);
    const page1 = await flux.api('GET', '/api/devices/sensor_1/raw?limit=2&encoding=base64');
    assert.equal(page1.body.items.length, 2);
    assert.equal(page1.body.has_more, true);
    assert.equal(Buffer.from(page1.body.items[0].payload, 'base64').toString('hex'), '01030201000000');
    const page2 = await flux.api('GET', `/api/devices/sensor_1/raw?limit=2&after=${page1.body.next}`);
    assert.deepEqual(page2.body.items.map((i: { payload: string }) => i.payload), ['01030201020000']);
    assert.equal(page2.body.has_more, false);
    const newest = await flux.api('GET', '/api/devices/sensor_1/raw?order=desc&limit=2');
    assert.deepEqual(newest.body.items.map((i: { payload: string }) => i.payload), ['01030201020000', '01030201010000'], 'newest first');
    const older = await flux.api('GET', `/api/devices/sensor_1/raw?order=desc&limit=2&before=${newest.body.next}`);
    assert.deepEqual(older.body.items.map((i: { payload: string }) => i.payload), ['01030201000000']);
    assert.equal(older.body.has_more, false);
    const later = await flux.api('GET', `/api/devices/sensor_1/raw?from=${Date.now() + 60_000}`);
    assert.deepEqual(later.body.items, []);
    assert.equal((await flux.api('GET', '/api/devices/nobody/raw')).status, 404);
    assert.equal((await flux.api('GET', '/api/devices/sensor_1/raw?limit=0')).status, 400);
  });

  it('refuses uplinks with a reason while unprocessed ones fill FLUX_RAW_MAX_BYTES, then accepts again; nothing acknowledged is lost', async () => {
    const dataDir = tempDir('flux-full-');
    flux = await startFlux({ FLUX_RAW_MAX_BYTES: '48KiB', FLUX_LOG_LEVEL: 'warn' }, { dataDir, timeoutMs: 60_000 });
    assert.equal((await flux.api('POST', '/api/products', { key: 'meter', name: 'Meter', metadata: { properties: [{ id: 'n', type: 'int' }] } })).status, 201);
    const secrets: string[] = [];
    for (let i = 0; i < 20; i++) secrets.push((await flux.api('POST', '/api/devices', { id: `m${i}`, product_id: 'meter' })).body.secret);
    const clients = await Promise.all(
      secrets.map(
        (secret, i) =>
          new Promise<mqtt.MqttClient>((resolve, reject) => {
            const c = mqtt.connect(`mqtt://127.0.0.1:${flux!.mqtt}`, { username: `m${i}`, password: secret, clientId: `m${i}`, protocolVersion: 5, reconnectPeriod: 0 });
            c.once('connect', () => resolve(c));
            c.once('error', reject);
          }),
      ),
    );
    // a burst far larger than the budget: ~1,200-byte uplinks, 30 from each of 20 devices at once
    const pad = 'x'.repeat(1200);
    const acked: [number, number][] = [];
    const refusals: string[] = [];
    await Promise.all(
      clients.map((c, d) =>
        Promise.all(
          Array.from({ length: 30 }, (_, n) =>
            new Promise<void>((resolve) =>
              c.publish(`/meter/m${d}/properties/report`, JSON.stringify({ values: { n }, ts: 1_750_000_000_000 + n, pad }), { qos: 1 }, (err) => {
                if (err) refusals.push(err.message);
                else acked.push([d, n]);
                resolve();
              }),
            ),
          ),
        ),
      ),
    );
    assert.ok(refusals.length > 0, `a 720 KB burst into a 48 KiB log refused nothing (${acked.length} acknowledged)`);
    assert.ok(acked.length > 0, 'some of the burst fitted');
    const metrics = await flux.api('GET', '/api/metrics');
    assert.match(String(metrics.body), /flux_uplink_log_refused_total\{[^}]*reason="log_full"[^}]*\} [1-9]/);
    assert.match(flux.output(), /uplinks refused: uplink log: full/);
    // once the flows caught up, there is room again
    const again = await until('an uplink accepted again', async () => {
      const ok = await new Promise<boolean>((resolve) => clients[0]!.publish('/meter/m0/properties/report', JSON.stringify({ values: { n: 999 }, ts: 1_750_000_000_999 }), { qos: 1 }, (err) => resolve(!err)));
      return ok || undefined;
    }, 30_000);
    assert.equal(again, true);
    for (const c of clients) c.end(true);
    const latest = await until('every acknowledged uplink stored', async () => {
      for (let d = 0; d < clients.length; d++) {
        const r = await flux!.api('GET', `/api/devices/m${d}/telemetry?metric=n&from=1750000000000&to=1750000001000`);
        const stored = new Set((r.body.items as { ts: number }[] | undefined)?.map((p) => p.ts));
        if (acked.some(([dd, n]) => dd === d && !stored.has(1_750_000_000_000 + n))) return undefined;
      }
      return true;
    }, 30_000);
    assert.equal(latest, true);
  });
});
