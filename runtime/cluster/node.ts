/**
 * This node's life in the cluster: it registers (refusing a node id another live node uses), answers
 * other nodes' commands, heartbeats its liveness and report into Redis, takes back the devices of
 * nodes that stopped heartbeating, and leaves cleanly on stop.
 *
 * Timing, with H = FLUX_CLUSTER_HEARTBEAT_MS: the alive key lives H and is renewed every H/3 (a node
 * survives a stall of 2H/3); survivors look for silent nodes every H/2. A node killed right after a
 * heartbeat is noticed at most H + H/2 later, so its devices are offline within 2H.
 */
import type { Redis } from 'ioredis';
import { ConfigError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { Transport } from '../ingress/index.ts';
import { connectOrExplain, closeRedis, openRedis, type RedisTarget } from './connection.ts';
import { NODES, aliveKey, clusterScripts, devicesKey, member, type ClusterScripts } from './scripts.ts';
import type { ClusterCommands } from './commands.ts';
import type { ClusterTraces } from './traces.ts';
import type { ClusterPresence } from './shared-presence.ts';
import { HEALTH_EVERY_MS, createReporter, type ClusterNodeDeps } from './reporter.ts';

/** a dead node's devices taken back per script call (one short Redis step each) */
const REAP_BATCH = 500;

export interface NodeOptions {
  target: RedisTarget;
  nodeId: string;
  heartbeatMs: number;
  version: string;
  log: Logger;
  commands: ClusterCommands;
  traces: ClusterTraces;
  shared: ClusterPresence;
}

export interface ClusterNode {
  start(deps: ClusterNodeDeps): Promise<void>;
  stop(): Promise<void>;
  scripts(): ClusterScripts;
  /** the node's connection (keys prefixed), once started */
  connection(): Redis;
  ready(): boolean;
}

export function createClusterNode(opts: NodeOptions): ClusterNode {
  const { nodeId, heartbeatMs, target, commands, traces, shared } = opts;
  const log = opts.log.child({ module: 'cluster' });
  let cmd: Redis | undefined;
  let sub: Redis | undefined;
  let scripts: ClusterScripts | undefined;
  let deps: ClusterNodeDeps | undefined;
  let reporter: ReturnType<typeof createReporter> | undefined;
  let beatTimer: NodeJS.Timeout | undefined;
  let scanTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  let beatFailures = 0;

  /** Takes back a dead node's devices, recording offline those no other node holds. */
  async function reap(dead: string): Promise<number> {
    let offline = 0;
    for (;;) {
      const batch = await scripts!.reap(dead, REAP_BATCH);
      if (batch.left < 0) return offline; // it came back
      if (batch.offline.length) {
        offline += batch.offline.length;
        await deps!.presence.recordRemote(batch.offline.map((d) => ({ ...d, status: 'offline' as const })), dead === nodeId ? 'this node restarted' : `node ${dead} stopped answering`);
      }
      if (batch.left === 0) return offline;
    }
  }

  /** Makes this node's set in Redis match the devices it holds (after Redis lost it, or missed calls). */
  async function resync(why: string): Promise<void> {
    shared.resynced();
    const inRedis = new Set(await cmd!.smembers(devicesKey(nodeId)));
    const changes: { id: string; status: 'online' | 'offline'; transport: Transport }[] = [];
    const here = new Map(deps!.presence.held());
    for (const [id, transport] of here) {
      // each checked just before its call: a connection that closed meanwhile made its own call first
      if (!inRedis.has(member(transport, id)) && deps!.presence.isOnline(id) && (await shared.held(id, transport))) changes.push({ id, status: 'online', transport });
    }
    for (const m of inRedis) {
      const at = m.indexOf(':');
      const id = m.slice(at + 1);
      const transport = m.slice(0, at) as Transport;
      if (here.get(id) !== transport && !deps!.presence.isOnline(id) && (await shared.released(id, transport))) changes.push({ id, status: 'offline', transport });
    }
    if (changes.length) await deps!.presence.recordRemote(changes, why);
    log.info({ why, held: here.size, changed: changes.length }, 'cluster: re-registered the devices this node holds');
  }

  async function beat(): Promise<void> {
    const report = reporter!.report(true);
    const previous = await cmd!.set(aliveKey(nodeId), report.heartbeat_at, 'PX', heartbeatMs, 'GET');
    await cmd!.hset(NODES, nodeId, JSON.stringify(report));
    if (beatFailures > 0) log.info({ failures: beatFailures }, 'cluster: heartbeats reach Redis again');
    beatFailures = 0;
    // gone: this node was silent past H (a stall, or Redis lost its data) and may have been reaped
    if (previous === null) await resync('the heartbeat had lapsed');
    else if (shared.outOfStep()) await resync('Redis missed some presence changes');
  }

  async function scan(): Promise<void> {
    for (const dead of await scripts!.silentNodes()) {
      if (dead === nodeId || stopping) continue;
      const offline = await reap(dead);
      log.warn({ node: dead, devices_offline: offline }, 'cluster: a node stopped heartbeating; its devices were taken back');
    }
  }

  function every(ms: number, run: () => Promise<void>, onError: (err: Error) => void): NodeJS.Timeout {
    const timer: NodeJS.Timeout = setTimeout(function tick() {
      run()
        .catch(onError)
        .finally(() => {
          if (!stopping) timer.refresh();
        });
    }, ms);
    timer.unref();
    return timer;
  }

  return {
    async start(d) {
      deps = d;
      stopping = false;
      cmd = openRedis(target, 'cluster', log, { keys: true, lazy: true });
      sub = openRedis(target, 'cluster-sub', log, { keys: false, lazy: true });
      await connectOrExplain(cmd, target.url);
      await connectOrExplain(sub, target.url);
      scripts = clusterScripts(cmd, target.prefix);
      if (await cmd.exists(aliveKey(nodeId))) {
        throw new ConfigError('FLUX_NODE_ID', `FLUX_NODE_ID=${nodeId} is in use by a running node of this cluster (its heartbeat is fresh); give each node its own id`);
      }
      // a previous run under this id that died: what it held is offline unless another node holds it
      const leftover = await reap(nodeId);
      if (leftover) log.info({ devices_offline: leftover }, 'cluster: devices a previous run of this node held were taken back');
      reporter = createReporter(nodeId, opts.version, d, Math.min(heartbeatMs, HEALTH_EVERY_MS));
      if ((await cmd.set(aliveKey(nodeId), new Date().toISOString(), 'PX', heartbeatMs, 'NX')) === null) {
        throw new ConfigError('FLUX_NODE_ID', `FLUX_NODE_ID=${nodeId} was just taken by another node starting with it`);
      }
      await cmd.hset(NODES, nodeId, JSON.stringify(reporter.report(true)));
      await commands.serve(sub, d.downlink);
      await traces.serve(sub, d.trace);
      reporter.listen();
      beatTimer = every(Math.max(100, Math.floor(heartbeatMs / 3)), beat, (err) => {
        if (beatFailures++ % 20 === 0) log.warn({ err: err.message, failures: beatFailures }, 'cluster: heartbeat failed (Redis unreachable?)');
      });
      scanTimer = every(Math.max(100, Math.floor(heartbeatMs / 2)), scan, (err) => log.debug({ err: err.message }, 'cluster: scan for silent nodes failed'));
      log.info({ node: nodeId, heartbeat_ms: heartbeatMs }, 'cluster: node joined');
    },
    async stop() {
      stopping = true;
      if (beatTimer) clearTimeout(beatTimer);
      if (scanTimer) clearTimeout(scanTimer);
      beatTimer = scanTimer = undefined;
      reporter?.unlisten();
      commands.stop();
      traces.stop();
      if (cmd?.status === 'ready' && scripts && deps) {
        try {
          // the broker and ingress stopped before: wait for their last presence calls, then leave
          await Promise.race([shared.settled(), new Promise((resolve) => setTimeout(resolve, 1500).unref())]);
          await cmd.del(aliveKey(nodeId));
          const left = await reap(nodeId);
          await cmd.hdel(NODES, nodeId);
          log.info({ node: nodeId, devices_offline: left }, 'cluster: node left');
          await deps.presence.flush();
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'cluster: leaving cleanly failed; the others take this node back when its heartbeat lapses');
        }
      }
      if (cmd) await closeRedis(cmd);
      if (sub) sub.disconnect();
      cmd = sub = undefined;
      scripts = undefined;
    },
    scripts() {
      if (!scripts) throw new Error('cluster node not started');
      return scripts;
    },
    connection() {
      if (!cmd) throw new Error('cluster node not started');
      return cmd;
    },
    ready: () => cmd?.status === 'ready',
  };
}
