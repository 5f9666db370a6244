/** Bench helpers around a real FLUX process: provisioning, metrics scraping, process CPU and RSS. */
import fs from 'node:fs';
import path from 'node:path';
import { startFlux, tempDir, type FluxProcess } from '../../test/helpers/flux-process.ts';
import { createRegistry } from '../../runtime/registry/index.ts';
import { createLogger } from '../../runtime/log/index.ts';
import type { LoadDevice } from './load.ts';

export { startFlux, tempDir, type FluxProcess };

export const MODBUS_FRAME_HEX = '010302' + '01c5' + '0000';
/** devices of the Modbus ingest rows: one per unit id (see provisionModbusUnits) */
export const MODBUS_DEVICES = 247;

/**
 * Creates a product and `count` devices straight in the data dir's SQLite registry (bulk insert:
 * 18k devices through the API would take minutes), before FLUX starts on that data dir.
 */
/**
 * Devices `sensor_1` … `sensor_{count}` (at most 247, the Modbus unit ids), each with the seed
 * frame of its own unit: modbus.wasm decodes unit N's frame as `sensor_N`, and a device may report
 * only for itself (runtime/ownership), so each device sends the frame that decodes to it.
 */
export async function provisionModbusUnits(dataDir: string, opts: { productKey: string; count: number; metadata?: object }): Promise<LoadDevice[]> {
  if (opts.count > 247) throw new RangeError('Modbus unit ids go up to 247');
  const devices = await provision(dataDir, { ...opts, plugin: 'modbus', prefix: 'sensor', first: 1 });
  return devices.map((d, i) => ({ ...d, payloadHex: (i + 1).toString(16).padStart(2, '0') + MODBUS_FRAME_HEX.slice(2) }));
}

export async function provision(dataDir: string, opts: { productKey: string; plugin?: string; count: number; prefix?: string; metadata?: object; first?: number }): Promise<LoadDevice[]> {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'flux.db');
  const registry = createRegistry({ db: { dialect: 'sqlite', url: `sqlite:${file}`, file }, log: createLogger({ level: 'silent' }) });
  await registry.start();
  const product = (await registry.products.find(opts.productKey)) ?? (await registry.products.create({ key: opts.productKey, name: opts.productKey, protocol_plugin_id: opts.plugin ?? null, metadata: (opts.metadata ?? {}) as never }));
  const prefix = opts.prefix ?? 'bench';
  const secret = 'bench-secret-0123456789abcdef';
  const first = opts.first ?? 0;
  const ids = Array.from({ length: opts.count }, (_, i) => `${prefix}_${first + i}`);
  await registry.devices.createMany({ product_id: product.id, ids, secret, name: (id) => id.replace(`${prefix}_`, `${prefix} `) });
  await registry.stop();
  return ids.map((id) => ({ username: id, password: secret, topic: `/${opts.productKey}/${id}/properties/report` }));
}

/** Parses Prometheus text into `name{labels}` → value. */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

export async function scrape(flux: FluxProcess): Promise<Map<string, number>> {
  const res = await fetch(`${flux.url}/api/metrics`, { headers: { authorization: `Bearer ${flux.token}` } });
  return parseMetrics(await res.text());
}

/** Sum of every series of `name` (any labels). */
export function metric(m: Map<string, number>, name: string): number {
  let sum = 0;
  for (const [k, v] of m) if (k === name || k.startsWith(name + '{')) sum += v;
  return sum;
}

/** Quantile from a Prometheus histogram's cumulative buckets (difference of two scrapes), in the metric's unit. */
export function histogramQuantile(before: Map<string, number>, after: Map<string, number>, name: string, q: number): number {
  const buckets: [number, number][] = [];
  for (const [k, v] of after) {
    const m = new RegExp(`^${name}_bucket\\{.*le="([^"]+)".*\\}$`).exec(k);
    if (!m) continue;
    const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
    buckets.push([le, v - (before.get(k) ?? 0)]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  const total = buckets.at(-1)?.[1] ?? 0;
  if (!total) return NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      // linear interpolation inside the bucket, as Prometheus' histogram_quantile does
      return prevLe + ((le - prevLe) * (rank - prevCount)) / Math.max(count - prevCount, 1);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

/** RSS (bytes) and CPU seconds (user+system) of a process, from /proc. */
/** The processes `pid` started (every thread's children), e.g. FLUX's GraphQL socket process. */
export function childPids(pid: number): number[] {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).flatMap((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
  } catch {
    return [];
  }
}

/** CPU seconds of one thread (`tid` = `pid`: the main thread). */
export function threadCpuSeconds(pid: number, tid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export function procStats(pid: number): { rss: number; cpuSeconds: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = 100; // USER_HZ on Linux
  const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / ticks;
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
  return { rss, cpuSeconds };
}
