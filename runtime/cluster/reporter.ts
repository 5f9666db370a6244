/**
 * What a node reports about itself (GET /api/cluster, and every heartbeat in cluster mode). Loads no
 * Redis client: a single node uses it alone (runtime/cluster/index.ts).
 */
import os from 'node:os';
import type { DeviceBus } from '../bus/index.ts';
import type { ComponentHealth } from '../app/context.ts';
import type { Downlink, Presence } from '../ingress/index.ts';
import type { Tracer } from '../trace/index.ts';

/** the modules' health is computed at most this often for the report (a node: once per heartbeat period) */
export const HEALTH_EVERY_MS = 5_000;

/** What a node reports with every heartbeat (GET /api/cluster shows it). */
export interface NodeReport {
  id: string;
  version: string;
  host: string;
  pid: number;
  started_at: string;
  heartbeat_at: string;
  http_port: number;
  mqtt_port: number;
  /** every module reports ok */
  healthy: boolean;
  /** the modules that do not */
  failing: string[];
  mqtt_connections: number;
  devices_online: number;
  /** uplinks put on this node's device bus per second, over the last heartbeat period */
  uplinks_per_s: number;
}

export interface NodeStats {
  http_port: number;
  mqtt_port: number;
  mqtt_connections: number;
  devices_online: number;
}

export interface ClusterNodeDeps {
  presence: Presence;
  downlink: Downlink;
  bus: DeviceBus;
  stats(): NodeStats;
  health(): Promise<Record<string, ComponentHealth>>;
  /** this node's message traces, which it answers the other nodes from */
  trace: Tracer;
}

/**
 * The local report and its throughput counter, shared by the cluster and the single-node view. The
 * modules' health is refreshed in the background: a slow check (a database that hangs) must never
 * delay a heartbeat, or a live node would look dead.
 */
export function createReporter(nodeId: string, version: string, deps: ClusterNodeDeps, healthEveryMs = HEALTH_EVERY_MS) {
  const startedAt = new Date().toISOString();
  let uplinks = 0;
  let since = Date.now();
  let rate = 0;
  // not healthy until a check said so (the first report of a starting node is made before its broker runs)
  let health = { at: 0, healthy: false, failing: [] as string[] };
  let checking: Promise<void> | undefined;
  const owner = {};
  function refreshHealth(now: number): Promise<void> {
    if (checking) return checking;
    if (now - health.at < healthEveryMs) return Promise.resolve();
    checking = deps
      .health()
      .catch((err: Error) => ({ health: { ok: false, error: err.message } }) as Record<string, ComponentHealth>)
      .then((all) => {
        const failing = Object.entries(all).filter(([, h]) => !h.ok).map(([name]) => name);
        health = { at: Date.now(), healthy: failing.length === 0, failing };
      })
      .finally(() => (checking = undefined));
    return checking;
  }
  return {
    listen: () => deps.bus.on('uplink', owner, () => void uplinks++),
    unlisten: () => deps.bus.removeOwner(owner),
    /** waits for a fresh health check when the last one is stale (a report on demand) */
    freshHealth: () => refreshHealth(Date.now()),
    /** the report; `tick` closes a throughput period of at least a second, else the last period's rate is kept */
    report(tick: boolean): NodeReport {
      const now = Date.now();
      if (tick && now - since >= 1000) {
        rate = now > since ? Math.round((uplinks * 10_000) / (now - since)) / 10 : 0;
        uplinks = 0;
        since = now;
      }
      void refreshHealth(now);
      return { id: nodeId, version, host: os.hostname(), pid: process.pid, started_at: startedAt, heartbeat_at: new Date(now).toISOString(), ...deps.stats(), healthy: health.healthy, failing: health.failing, uplinks_per_s: rate };
    },
  };
}

export interface NodeView extends NodeReport {
  /** up: heartbeating; down: silent past the heartbeat period, its devices being taken back */
  status: 'up' | 'down';
  /** ms since its last heartbeat, by Redis' clock (null when it is down) */
  heartbeat_age_ms: number | null;
  self: boolean;
}

export function totals(nodes: NodeView[]): { nodes_up: number; mqtt_connections: number; devices_online: number; uplinks_per_s: number } {
  const up = nodes.filter((n) => n.status === 'up');
  const sum = (f: (n: NodeView) => number) => up.reduce((s, n) => s + (Number.isFinite(f(n)) ? f(n) : 0), 0);
  return { nodes_up: up.length, mqtt_connections: sum((n) => n.mqtt_connections), devices_online: sum((n) => n.devices_online), uplinks_per_s: Math.round(sum((n) => n.uplinks_per_s) * 10) / 10 };
}
