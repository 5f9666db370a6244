/**
 * A fleet of MQTT devices for the cluster's end-to-end tests: each mqtt.js client has every node's
 * port in its server list, starting with its own node (round-robin), and moves to the next one when
 * its connection is lost (the load balancer's part). Each device sends QoS 1 uplinks `{values:{n}}`
 * with its own counter n and the device timestamp base + n, a window of them at a time; the fleet
 * records what was acknowledged, and compares it with the rows in the shared database.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { until } from './cluster.ts';
import { rawSql } from '../helpers/databases.ts';

export interface FleetDevice {
  id: string;
  client: MqttClient;
  /** the MQTT port of the node it is connected to now (0: never connected) */
  port: number;
  next: number;
  inFlight: Set<number>;
  acked: Set<number>;
}

export interface Fleet {
  devices: FleetDevice[];
  sent(): number;
  acked(): number;
  /** `${device}#${n}` of the publishes in flight on the devices connected to `port` (a node about to die) */
  inFlightOn(port: number): Set<string>;
  /** waits until `total` are sent and every one acknowledged, then closes the clients */
  finish(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Connects the devices and starts sending `total` uplinks over them. */
export function startFleet(opts: { ids: string[]; secrets: Record<string, string>; ports: number[]; product: string; baseTs: number; total: number; window: number; /** when given, each PUBACK's time since its publish (ms) */ latencies?: number[] }): Fleet {
  let sent = 0;
  const devices: FleetDevice[] = opts.ids.map((id, i) => {
    const servers = opts.ports.map((_, k) => ({ host: '127.0.0.1', port: opts.ports[(i + k) % opts.ports.length]! }));
    const client = mqtt.connect({ servers, clientId: id, username: id, password: opts.secrets[id], reconnectPeriod: 200, connectTimeout: 3000, clean: true });
    const dev: FleetDevice = { id, client, port: 0, next: 0, inFlight: new Set(), acked: new Set() };
    client.on('connect', () => {
      dev.port = client.options.port!;
      pump();
    });
    client.on('error', () => {});
    return dev;
  });
  function pump() {
    for (const dev of devices) {
      while (dev.client.connected && dev.inFlight.size < opts.window && sent < opts.total) {
        const n = dev.next++;
        sent++;
        dev.inFlight.add(n);
        const at = opts.latencies ? performance.now() : 0;
        dev.client.publish(`/${opts.product}/${dev.id}/properties/report`, JSON.stringify({ values: { n }, ts: opts.baseTs + n }), { qos: 1 }, (err) => {
          // mqtt.js sends an unacknowledged publish again after a reconnect; an error is one it gave up on
          if (err) return;
          opts.latencies?.push(performance.now() - at);
          dev.inFlight.delete(n);
          dev.acked.add(n);
          pump();
        });
      }
    }
  }
  const tick = setInterval(pump, 50);
  const close = async () => {
    clearInterval(tick);
    await Promise.all(devices.map((d) => d.client.endAsync(true).catch(() => undefined)));
  };
  return {
    devices,
    sent: () => sent,
    acked: () => devices.reduce((s, d) => s + d.acked.size, 0),
    inFlightOn: (port) => new Set(devices.filter((d) => d.port === port).flatMap((d) => [...d.inFlight].map((n) => `${d.id}#${n}`))),
    async finish(timeoutMs) {
      try {
        await until(() => sent >= opts.total, `all ${opts.total} sent`, timeoutMs);
        await until(() => devices.every((d) => d.inFlight.size === 0), 'every PUBACK', 30_000);
      } finally {
        await close();
      }
    },
    close,
  };
}

export interface StoreCount {
  rows: number;
  /** acknowledged uplinks without their row */
  lost: string[];
  /** (device, n) stored more than once */
  duplicated: number;
  /** rows whose value is not the uplink their timestamp says */
  mismatched: number;
  /** rows of uplinks neither acknowledged nor in `cutOff` */
  unexplained: number;
}

/**
 * Reads the rows of metric `n` at or after `baseTs` until every acknowledged uplink has its row and
 * the count stays the same for a second, then counts them against the fleet.
 */
export async function countStored(dbUrl: string, fleet: Fleet, baseTs: number, cutOff: Set<string>, timeoutMs = 40_000): Promise<StoreCount> {
  const sql = await rawSql(dbUrl);
  const read = () => sql.query<{ d: string; ts: string; v: number }>("SELECT s.device_id AS d, p.ts AS ts, p.num AS v FROM ts_points p JOIN ts_series s ON s.id = p.series_id WHERE s.metric = 'n' AND p.ts >= ?", [baseTs]);
  const lostIn = (rows: { d: string; ts: string }[]) => {
    const have = new Set(rows.map((r) => `${r.d}#${Number(r.ts) - baseTs}`));
    return fleet.devices.flatMap((d) => [...d.acked].filter((n) => !have.has(`${d.id}#${n}`)).map((n) => `${d.id}#${n}`));
  };
  let rows: { d: string; ts: string; v: number }[] = [];
  try {
    await until(async () => ((rows = await read()), lostIn(rows).length === 0), 'every acknowledged uplink stored', timeoutMs, 250).catch(() => undefined);
    let last = -1;
    await until(async () => ((rows = await read()), rows.length === last || ((last = rows.length), false)), 'the row count settles', 10_000, 1000);
  } finally {
    await sql.close();
  }
  const byId = new Map(fleet.devices.map((d) => [d.id, d]));
  const seen = new Map<string, number>();
  let mismatched = 0;
  let unexplained = 0;
  for (const r of rows) {
    const n = Number(r.ts) - baseTs;
    const key = `${r.d}#${n}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
    if (r.v !== n) mismatched++;
    if (!byId.get(r.d)?.acked.has(n) && !cutOff.has(key)) unexplained++;
  }
  return { rows: rows.length, lost: lostIn(rows), duplicated: [...seen.values()].filter((k) => k > 1).length, mismatched, unexplained };
}
