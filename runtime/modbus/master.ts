/**
 * The Modbus master: polls every device the registry maps (runtime/modbus/sync.ts) on its product's
 * interval, appends the values to the durable uplink log as already-decoded uplinks (from there they
 * go on the device bus like MQTT, TCP and HTTP uplinks: traced, ruled, stored, on the live feed,
 * replayed after a crash), keeps each device's online status, and writes registers for `write`
 * commands. In cluster mode it polls only the endpoints whose lease this node holds
 * (`endpointLeases`, runtime/cluster/modbus-leases.ts).
 *
 * Timing: each device has its own timer, scheduled from its planned times (no drift), started at a
 * random phase on a 100 ms grid (POLL_SLOT_MS). A poll still running when the next one is due skips
 * that one (an overrun). A device that stopped answering is probed at a growing interval (doubling
 * from the larger of its interval and timeout, up to 10 × that, at most 60 s), so a dead unit on an
 * RTU bus rarely holds the bus for its timeout.
 */
import { newMessageId } from '../bus/index.ts';
import { FluxError } from '../errors/index.ts';
import type { Presence } from '../ingress/presence.ts';
import type { Logger } from '../log/index.ts';
import type { Registry, DeviceIdentity } from '../registry/index.ts';
import { decodeBlock } from './codec.ts';
import { ModbusError, readRequest } from './frame.ts';
import { createEndpoint, endpointKey, type Endpoint, type EndpointAddress, type EndpointStats, type RequestGroup } from './endpoint.ts';
import { createModbusMetrics, type ModbusMetrics } from './metrics.ts';
import { readPolledDevices, type PolledDevice } from './sync.ts';
import { createPollAppender } from './appender.ts';
import { modbusCommands, type ModbusCommandResult } from './commands.ts';
import type { UnitStatus } from '../api-shapes/index.ts';
import type { MetricsRegistry } from '../metrics/index.ts';
import type { UplinkJournal } from '../uplink-log/index.ts';

export interface ModbusMasterDeps {
  registry: Registry;
  /** the durable uplink log's journal: every ingress appends through it before the bus sees the uplink */
  journal: Pick<UplinkJournal, 'append' | 'emit' | 'behind'>;
  presence: Pick<Presence, 'connected'>;
  metrics: MetricsRegistry;
  log: Logger;
  /** how often the registry is read again for changes (ms); default 5000 */
  syncMs?: number;
  /**
   * Cluster mode: which endpoints this node polls (runtime/cluster's Modbus leases), asked at each
   * sync. Without it every endpoint is polled here. Devices of the others stay known, for commands.
   */
  endpointLeases?: EndpointLeases;
}

export interface EndpointLeases {
  /** claims or renews `endpoints`' leases; answers those held by this node (undefined: unknown now, keep what you have) */
  claim(endpoints: string[], leaseMs: number): Promise<Set<string> | undefined>;
}

export type { UnitStatus };

export interface ModbusMaster {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Reads the registry now and applies the changes. */
  sync(): Promise<void>;
  /** true when `identity`'s product has a Modbus register map (commands to it go to this master) */
  handles(identity: DeviceIdentity): boolean;
  /** `write` ({property, value} or {values}) or `read`; a slave's exception throws a FluxError naming it. */
  command(deviceId: string, command: string, params: unknown): Promise<ModbusCommandResult>;
  /** One ad-hoc request over the shared connection of `address` (the `flux modbus` node). */
  request(address: EndpointAddress, unit: number, pdu: Buffer, timeoutMs: number): Promise<Buffer>;
  status(): { endpoints: (EndpointStats & { endpoint: string; units: UnitStatus[] })[] };
}

interface Unit {
  cfg: PolledDevice;
  ep: Endpoint;
  /** polled by this node (cluster mode: it holds the endpoint's lease) */
  polled: boolean;
  timer: NodeJS.Timeout | undefined;
  nextAt: number;
  probeAt: number;
  busy: boolean;
  failures: number;
  release: ((reason: string) => void) | undefined;
  lastError: string | null;
  lastOk: number;
  polls: number;
  overruns: number;
}

const IDLE_ENDPOINT_MS = 60_000;
/**
 * Polls start on this grid of the clock, phases random across an interval's slots: 1,000 units at
 * 1 s wake the process 10 times a second, not 1,000, and a slot's requests to a connection go out
 * in one write. Intervals, and so their jitter, are unchanged (bench/modbus.bench.ts: the CPU).
 */
const POLL_SLOT_MS = 100;
/** Values answered within this window are appended together (runtime/modbus/appender.ts). */
const APPEND_WINDOW_MS = 5;

export function createModbusMaster(deps: ModbusMasterDeps): ModbusMaster {
  const { registry, journal, presence, log } = deps;
  const syncMs = deps.syncMs ?? 5000;
  // an endpoint's lease outlives two missed syncs of its holder; a dead holder's endpoints move within this + a sync
  const leaseMs = Math.max(3 * syncMs, 3000);
  const metrics: ModbusMetrics = createModbusMetrics(deps.metrics);
  const units = new Map<string, Unit>();
  const endpoints = new Map<string, { ep: Endpoint; maxInFlight: number | undefined; lastUsed: number }>();
  const warned = new Set<string>();
  let syncTimer: NodeJS.Timeout | undefined;
  let syncing: Promise<void> | undefined;
  let running = false;

  function endpointFor(address: EndpointAddress, maxInFlight?: number): Endpoint {
    const key = endpointKey(address);
    let e = endpoints.get(key);
    if (e && e.maxInFlight !== maxInFlight && [...units.values()].every((u) => u.ep !== e!.ep)) {
      e.ep.close();
      e = undefined;
    }
    if (!e) {
      const ep = createEndpoint({
        ...address,
        maxInFlight,
        onResult: (ok, ms, reason) => metrics.request(key, ok, ms, reason),
        onConnection: (state, detail) => (state === 'connected' ? log.info({ endpoint: key }, 'modbus endpoint connected') : log.warn({ endpoint: key, detail }, `modbus endpoint ${state}`)),
      });
      e = { ep, maxInFlight, lastUsed: Date.now() };
      endpoints.set(key, e);
    }
    e.lastUsed = Date.now();
    return e.ep;
  }

  const appender = createPollAppender(journal, APPEND_WINDOW_MS);

  function emit(u: Unit, values: Record<string, number | boolean>, ts: number): void {
    const { identity, deviceId } = u.cfg;
    const decoded = { device_id: deviceId, values, ts };
    // The payload is the decoded values' JSON: what the raw-traffic API shows, and what a replay of
    // the log turns back into `decoded` (runtime/uplink-log/journal.ts), so decode is skipped again.
    appender.push({
      id: newMessageId(),
      deviceId,
      productId: identity.product.id,
      productKey: identity.product.key,
      type: 'properties',
      ts,
      payload: Buffer.from(JSON.stringify({ values, ts })),
      topic: `${u.ep.key}/${u.cfg.unit}`,
      transport: 'modbus',
      decoded,
      logSeq: undefined,
    });
  }

  function answered(u: Unit): void {
    u.failures = 0;
    u.lastOk = Date.now();
    // online is the polling node's to say (a `read` command on another node answers, it does not hold the device)
    if (!u.release && u.polled) u.release = presence.connected(u.cfg.identity, 'modbus');
  }

  function failed(u: Unit, err: ModbusError): void {
    u.failures++;
    u.lastError = `${err.reason}: ${err.message}`;
    const after = u.cfg.config.offline_after;
    if (u.failures >= after) {
      if (u.release) {
        u.release(u.lastError);
        u.release = undefined;
      }
      // probes of a dead unit back off; on a serial bus each one holds the bus for its timeout
      const step = Math.max(u.cfg.config.interval_ms, u.cfg.config.timeout_ms);
      u.probeAt = Date.now() + Math.min(step * 2 ** Math.min(u.failures - after, 10), 10 * step, 60_000);
    }
  }

  /**
   * Reads every block of the unit's map; answers the values read and the first error. The blocks
   * are asked together: pipelined on Modbus TCP, back to back on RTU; once one times out the rest
   * are not sent (a unit that does not answer one request would hold a serial bus for each).
   */
  async function readAll(u: Unit): Promise<{ values: Record<string, number | boolean>; error?: ModbusError }> {
    const { blocks, unit, config } = u.cfg;
    const values: Record<string, number | boolean> = {};
    const group: RequestGroup = {};
    let error: ModbusError | undefined;
    await Promise.all(
      blocks.map((b) =>
        u.ep.request(unit, readRequest(b.function, b.address, b.quantity), config.timeout_ms, group).then(
          (data) => decodeBlock(b, data, values),
          (err: ModbusError) => void (error ??= err),
        ),
      ),
    );
    return { values, error };
  }

  async function poll(u: Unit): Promise<Record<string, number | boolean>> {
    u.busy = true;
    u.polls++;
    const ts = Date.now();
    try {
      const { values, error } = await readAll(u);
      if (units.get(u.cfg.deviceId) !== u) return values; // removed meanwhile
      if (Object.keys(values).length) emit(u, values, ts);
      metrics.poll(error ? 'failed' : 'ok');
      if (error) failed(u, error);
      else answered(u);
      if (error && !Object.keys(values).length) throw error;
      return values;
    } finally {
      u.busy = false;
    }
  }

  function tick(u: Unit): void {
    u.timer = undefined;
    if (units.get(u.cfg.deviceId) !== u || !u.polled) return;
    const now = Date.now();
    const interval = u.cfg.config.interval_ms;
    u.nextAt += interval;
    if (u.nextAt <= now) u.nextAt = now + interval; // late (a paused process): skip what was missed
    if (u.busy) {
      u.overruns++;
      metrics.poll('overrun');
    } else if (now >= u.probeAt && !journal.behind()) poll(u).catch(() => {});
    u.timer = setTimeout(tick, Math.max(0, u.nextAt - Date.now()), u);
  }

  function addUnit(cfg: PolledDevice, polled: boolean): void {
    const u: Unit = { cfg, ep: endpointFor(cfg.endpoint, cfg.maxInFlight), polled, timer: undefined, nextAt: 0, probeAt: 0, busy: false, failures: 0, release: undefined, lastError: null, lastOk: 0, polls: 0, overruns: 0 };
    units.set(cfg.deviceId, u);
    if (polled) startPolling(u);
  }

  function startPolling(u: Unit): void {
    const { cfg } = u;
    u.polled = true;
    // a random phase on the POLL_SLOT_MS grid: units that share a slot are polled in one timer turn
    const first = Math.ceil((Date.now() + Math.random() * Math.min(cfg.config.interval_ms, 10_000)) / POLL_SLOT_MS) * POLL_SLOT_MS;
    u.nextAt = first - cfg.config.interval_ms;
    u.timer = setTimeout(tick, first - Date.now(), u);
  }

  function stopPolling(u: Unit, reason: string): void {
    u.polled = false;
    if (u.timer) clearTimeout(u.timer);
    u.timer = undefined;
    u.release?.(reason);
    u.release = undefined;
  }

  function removeUnit(u: Unit, reason: string): void {
    stopPolling(u, reason);
    units.delete(u.cfg.deviceId);
  }

  /** the endpoints this node polls: all, or (cluster mode) those whose lease it holds */
  let held: Set<string> | undefined;
  async function claimEndpoints(desired: Map<string, PolledDevice>): Promise<(cfg: PolledDevice) => boolean> {
    if (!deps.endpointLeases) return () => true;
    const keys = [...new Set([...desired.values()].map((d) => endpointKey(d.endpoint)))].sort();
    const now = await deps.endpointLeases.claim(keys, leaseMs);
    if (now) held = now;
    return (cfg) => !!held?.has(endpointKey(cfg.endpoint));
  }

  async function sync(): Promise<void> {
    if (syncing) return syncing;
    syncing = (async () => {
      const desired = await readPolledDevices(registry, log, warned);
      if (!running) return;
      const mine = await claimEndpoints(desired);
      if (!running) return;
      for (const [id, u] of units) {
        const want = desired.get(id);
        if (!want) removeUnit(u, 'modbus polling removed');
        else if (want.signature !== u.cfg.signature) {
          removeUnit(u, 'modbus settings changed');
          addUnit(want, mine(want));
        } else {
          u.cfg.identity = want.identity;
          if (mine(want) && !u.polled) startPolling(u);
          else if (!mine(want) && u.polled) stopPolling(u, 'another node polls it now');
        }
      }
      for (const [id, cfg] of desired) if (!units.has(id)) addUnit(cfg, mine(cfg));
      const used = new Set([...units.values()].map((u) => u.ep));
      for (const [key, e] of endpoints) {
        if (!used.has(e.ep) && Date.now() - e.lastUsed > IDLE_ENDPOINT_MS) {
          e.ep.close();
          endpoints.delete(key);
        }
      }
      metrics.units(units.size, [...units.values()].filter((u) => u.release).length, endpoints.size);
    })().finally(() => (syncing = undefined));
    return syncing;
  }

  function scheduleSync(): void {
    syncTimer = setTimeout(() => {
      sync()
        .catch((err) => log.error({ err }, 'reading the Modbus devices from the registry failed'))
        .finally(() => running && scheduleSync());
    }, syncMs);
  }

  async function unitFor(deviceId: string): Promise<Unit> {
    let u = units.get(deviceId);
    if (!u) {
      await sync();
      u = units.get(deviceId);
    }
    if (!u) throw new FluxError('not_polled', `device '${deviceId}' is not a polled Modbus device (check its transport.modbus and its product's register map)`, 409);
    return u;
  }

  const command = modbusCommands({ unitFor, poll, log });

  return {
    async start() {
      running = true;
      await sync();
      scheduleSync();
    },
    async stop() {
      running = false;
      if (syncTimer) clearTimeout(syncTimer);
      await syncing?.catch(() => {});
      for (const u of [...units.values()]) removeUnit(u, 'modbus master stopped');
      // values read but not yet appended go to the log before it closes (it stops after this module)
      appender.flush();
      for (const e of endpoints.values()) e.ep.close();
      endpoints.clear();
    },
    sync,
    handles: (identity) => (identity.product.transport as { modbus?: unknown } | null)?.modbus !== undefined,
    command,
    request(address, unit, pdu, timeoutMs) {
      return endpointFor(address).request(unit, pdu, timeoutMs);
    },
    status() {
      const byEp = new Map<Endpoint, UnitStatus[]>();
      for (const e of endpoints.values()) byEp.set(e.ep, []);
      for (const u of units.values()) {
        byEp.get(u.ep)?.push({
          device_id: u.cfg.deviceId,
          unit: u.cfg.unit,
          online: u.release !== undefined,
          consecutive_failures: u.failures,
          last_error: u.lastError,
          last_ok: u.lastOk ? new Date(u.lastOk).toISOString() : null,
          polls: u.polls,
          overruns: u.overruns,
        });
      }
      return { endpoints: [...byEp].map(([ep, list]) => ({ endpoint: ep.key, ...ep.stats(), units: list })) };
    },
  };
}
