/**
 * An acknowledgement is a promise: QoS 1 uplinks and HTTP 202s from many devices, FLUX killed with
 * SIGKILL at random moments and restarted on the same data dir; every acknowledged message is
 * stored once it has caught up, and no message is stored twice.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import mqtt, { type MqttClient } from 'mqtt';
import { startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';
import { until as waitFor } from '../helpers/wait.ts';

const until = (check: () => boolean, what: string, ms: number) => waitFor(what, () => check() || undefined, ms);

const DEVICES = 50;
const BASE_TS = 1_750_000_000_000;

async function provision(flux: FluxProcess): Promise<Map<string, string>> {
  const p = await flux.api('POST', '/api/products', { key: 'meter', name: 'Meter', metadata: { properties: [{ id: 'n', type: 'int' }] } });
  assert.equal(p.status, 201, JSON.stringify(p.body));
  const secrets = new Map<string, string>();
  for (let i = 0; i < DEVICES; i++) {
    const d = await flux.api('POST', '/api/devices', { id: `m${i}`, product_id: 'meter' });
    assert.equal(d.status, 201, JSON.stringify(d.body));
    secrets.set(`m${i}`, d.body.secret);
  }
  return secrets;
}

/**
 * Every stored point: device → (ts → value). The writer folds points into ts_points in rounds; the
 * newest wait in ts_points_recent in arrival order (runtime/storage/sqlite-recent.ts) and are read
 * as the fold would apply them, last one winning.
 */
function storedPoints(dataDir: string): Map<string, Map<number, number>> {
  const db = new DatabaseSync(path.join(dataDir, 'telemetry.db'), { readOnly: true });
  const rows = db.prepare("SELECT s.device_id AS d, p.ts AS ts, p.num AS v FROM ts_points p JOIN ts_series s ON s.id = p.series_id WHERE s.metric = 'n'").all() as { d: string; ts: number; v: number }[];
  const waiting = db.prepare("SELECT s.device_id AS d, r.ts AS ts, r.num AS v FROM ts_points_recent r JOIN ts_series s ON s.id = r.series_id WHERE s.metric = 'n' ORDER BY r.rowid").all() as { d: string; ts: number; v: number }[];
  db.close();
  const out = new Map<string, Map<number, number>>();
  const at = (d: string) => {
    let m = out.get(d);
    if (!m) out.set(d, (m = new Map()));
    return m;
  };
  for (const r of rows) {
    const m = at(r.d);
    assert.ok(!m.has(r.ts), `duplicate row for ${r.d} at ${r.ts}`);
    m.set(Number(r.ts), r.v);
  }
  for (const r of waiting) at(r.d).set(Number(r.ts), r.v);
  return out;
}

/**
 * Devices that publish message after message (QoS 1, JSON with its own ts) at `rate` per second in
 * all, and remember which were acknowledged. Each message is unique: device + sequence number.
 */
function publishers(secrets: Map<string, string>, rate: number) {
  const acked = new Map<string, number[]>();
  let sent = 0;
  let clients: MqttClient[] = [];
  let timer: NodeJS.Timeout | undefined;
  const next = new Map<string, number>();
  return {
    acked,
    ackedCount: () => [...acked.values()].reduce((a, l) => a + l.length, 0),
    sent: () => sent,
    connect(port: number) {
      clients = [...secrets].map(([id, secret]) => {
        const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { username: id, password: secret, clientId: id, reconnectPeriod: 0, connectTimeout: 5000 });
        c.on('error', () => {});
        return c;
      });
      const per = Math.max(1, Math.round(rate / 100)); // one tick every 10 ms
      let d = 0;
      timer = setInterval(() => {
        for (let k = 0; k < per; k++) {
          const c = clients[d++ % clients.length]!;
          if (!c.connected) continue;
          const id = c.options.username!;
          const n = next.get(id) ?? 0;
          next.set(id, n + 1);
          sent++;
          c.publish(`/meter/${id}/properties/report`, JSON.stringify({ values: { n }, ts: BASE_TS + n }), { qos: 1 }, (err) => {
            if (err) return;
            let l = acked.get(id);
            if (!l) acked.set(id, (l = []));
            l.push(n);
          });
        }
      }, 10);
    },
    stop() {
      clearInterval(timer);
      for (const c of clients) c.end(true);
      clients = [];
    },
  };
}

describe('durable uplink log: kill -9 and restart', function () {
  this.timeout(300_000);
  let flux: FluxProcess | undefined;
  afterEach(async () => {
    await flux?.stop();
  });

  it('loses no acknowledged QoS 1 uplink and stores none twice: 20,000 uplinks, 50 devices, killed at 5 random points', async () => {
    const dataDir = tempDir('flux-kill-');
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' }, { dataDir });
    const secrets = await provision(flux);
    const pub = publishers(secrets, 1500);
    const TOTAL = 20_000;
    const kills: number[] = [];
    for (let round = 0; round < 5; round++) {
      pub.connect(flux.mqtt);
      // kill somewhere in this round's share of the 20,000 acknowledgements
      const share = ((round + 1) * TOTAL) / 6;
      const at = Math.round(share - TOTAL / 6 + Math.random() * (TOTAL / 6));
      await until(() => pub.ackedCount() >= at, `${at} acknowledgements`, 60_000);
      flux.child.kill('SIGKILL');
      await new Promise((r) => flux!.child.once('exit', r));
      pub.stop();
      kills.push(pub.ackedCount());
      flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' }, { dataDir });
    }
    pub.connect(flux.mqtt);
    await until(() => pub.sent() >= TOTAL, 'the last uplinks sent', 60_000);
    pub.stop();
    const acked = pub.ackedCount();
    // caught up: every acknowledged point is stored (the flows store in batches)
    await until(
      () => {
        const points = storedPoints(dataDir);
        return [...pub.acked].every(([d, ns]) => ns.every((n) => points.get(d)?.get(BASE_TS + n) === n));
      },
      'every acknowledged uplink stored',
      60_000,
    );
    await flux.stop();
    flux = undefined;
    const points = storedPoints(dataDir); // asserts no duplicate (device, ts)
    let stored = 0;
    for (const [d, m] of points) {
      for (const [ts, v] of m) assert.equal(v, ts - BASE_TS, `${d}: the row at ${ts} holds its own message`);
      stored += m.size;
    }
    const lost = [...pub.acked].flatMap(([d, ns]) => ns.filter((n) => points.get(d)?.get(BASE_TS + n) !== n).map((n) => `${d}#${n}`));
    assert.deepEqual(lost, [], `killed after ${kills.join(', ')} acknowledgements`);
    assert.ok(acked >= TOTAL * 0.9, `${acked} of ${pub.sent()} acknowledged`);
    // stored ≥ acknowledged: a message stored whose PUBACK the kill cut off is fine, a missing one is not
    assert.ok(stored >= acked, `${stored} rows for ${acked} acknowledgements`);
  });

  it('an HTTP 202 is a promise too: uplinks acknowledged before a kill are stored after the restart', async () => {
    const dataDir = tempDir('flux-kill-http-');
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' }, { dataDir });
    const secrets = await provision(flux);
    const accepted: [string, number][] = [];
    let stopped = false;
    const post = async (id: string, n: number) => {
      const res = await fetch(`${flux!.url}/api/devices/${id}/uplink`, {
        method: 'POST',
        headers: { 'x-device-secret': secrets.get(id)!, 'content-type': 'application/json' },
        body: JSON.stringify({ values: { n }, ts: BASE_TS + n }),
      }).catch(() => undefined);
      if (res?.status === 202) accepted.push([id, n]);
    };
    const senders = Array.from({ length: 10 }, async (_, s) => {
      for (let n = 0; !stopped; n++) await post(`m${s}`, n);
    });
    await until(() => accepted.length >= 300 + Math.floor(Math.random() * 300), 'a few hundred 202s', 60_000);
    flux.child.kill('SIGKILL');
    stopped = true;
    await Promise.all(senders);
    flux = await startFlux({ FLUX_LOG_LEVEL: 'warn' }, { dataDir });
    await until(() => {
      const points = storedPoints(dataDir);
      return accepted.every(([d, n]) => points.get(d)?.get(BASE_TS + n) === n);
    }, `all ${accepted.length} accepted uplinks stored`, 60_000);
  });
});
