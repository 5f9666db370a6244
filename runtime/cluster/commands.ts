/**
 * Commands across nodes (runtime/ingress/downlink.ts `RemoteCommands`): a node that does not hold a
 * device asks Redis which node does, and has that node send the command (`Downlink.sendHere`), so
 * status, plugin encoding and TCP connections stay where the device is connected.
 *
 * Request and answer travel on Redis pub/sub, one channel per node (`<prefix>rpc:<node>`). Bounded:
 * at most MAX_PENDING requests wait for answers and MAX_SERVING run for others at once; a request
 * waits REQUEST_TIMEOUT_MS at most (then 504: it may or may not have reached the device).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { FluxError, isFluxError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { CommandResult, Downlink, RemoteCommands } from '../ingress/index.ts';
import type { ClusterScripts } from './scripts.ts';

const REQUEST_TIMEOUT_MS = 5_000;
const MAX_PENDING = 1_000;
const MAX_SERVING = 1_000;
/** a request or answer larger than this is dropped (API bodies are at most 1 MB: runtime/api/body.ts) */
const MAX_MESSAGE_BYTES = 2 * 1024 * 1024;

interface Request {
  k: 'req';
  id: string;
  from: string;
  deviceId: string;
  command: string;
  params: unknown;
}
interface Answer {
  k: 'res';
  id: string;
  result?: CommandResult;
  error?: { code: string; message: string; status: number };
}

export const rpcChannel = (prefix: string, nodeId: string) => `${prefix}rpc:${nodeId}`;

export interface ClusterCommands extends RemoteCommands {
  /** starts answering this node's channel (requests for its devices, answers to its own requests) */
  serve(sub: Redis, downlink: Downlink): Promise<void>;
  /** rejects what still waits; stops serving */
  stop(): void;
}

export function createClusterCommands(opts: { nodeId: string; prefix: string; cmd: () => Redis; scripts: () => ClusterScripts; log: Logger }): ClusterCommands {
  const { nodeId, prefix, log } = opts;
  const pending = new Map<string, { resolve: (r: CommandResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  let serving = 0;
  let downlink: Downlink | undefined;

  function answer(to: string, a: Answer): void {
    opts
      .cmd()
      .publish(rpcChannel(prefix, to), JSON.stringify(a))
      .catch((err: Error) => log.warn({ to, err: err.message }, 'cluster: a command answer could not be sent'));
  }

  async function run(req: Request): Promise<void> {
    if (!downlink || serving >= MAX_SERVING) {
      return answer(req.from, { k: 'res', id: req.id, error: { code: 'cluster_busy', message: `node ${nodeId} runs too many commands for other nodes`, status: 503 } });
    }
    serving++;
    try {
      const result = await downlink.sendHere(req.deviceId, req.command, req.params);
      answer(req.from, { k: 'res', id: req.id, result });
    } catch (err) {
      if (isFluxError(err)) return answer(req.from, { k: 'res', id: req.id, error: { code: err.code, message: err.message, status: err.status } });
      log.error({ err, deviceId: req.deviceId, from: req.from }, 'cluster: a command forwarded by another node failed');
      answer(req.from, { k: 'res', id: req.id, error: { code: 'internal', message: `internal error on node ${nodeId} (see its log)`, status: 500 } });
    } finally {
      serving--;
    }
  }

  function onMessage(channel: string, text: string): void {
    if (text.length > MAX_MESSAGE_BYTES) return log.warn({ channel, bytes: text.length }, 'cluster: oversized command message dropped');
    let msg: Request | Answer;
    try {
      msg = JSON.parse(text) as Request | Answer;
    } catch {
      return log.warn({ channel }, 'cluster: unreadable command message dropped');
    }
    if (msg.k === 'req' && typeof msg.deviceId === 'string' && typeof msg.command === 'string' && typeof msg.from === 'string') {
      void run(msg);
    } else if (msg.k === 'res') {
      const p = pending.get(msg.id);
      if (!p) return; // answered after its timeout
      pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.result) p.resolve(msg.result);
      else p.reject(new FluxError(msg.error?.code ?? 'internal', msg.error?.message ?? 'the other node failed', msg.error?.status ?? 500));
    }
  }

  return {
    async holder(deviceId) {
      try {
        return await opts.scripts().holder(deviceId, nodeId);
      } catch (err) {
        throw new FluxError('cluster_unavailable', `the node holding device '${deviceId}' cannot be looked up: the cluster's shared state (Redis) does not answer (${(err as Error).message})`, 503);
      }
    },
    async send(node, deviceId, command, params) {
      if (pending.size >= MAX_PENDING) throw new FluxError('cluster_busy', `${MAX_PENDING} commands already wait for other nodes`, 503);
      const id = randomUUID();
      const answered = new Promise<CommandResult>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new FluxError('cluster_timeout', `node ${node}, which holds device '${deviceId}', did not answer within ${REQUEST_TIMEOUT_MS / 1000} s; the command may or may not have reached the device`, 504));
        }, REQUEST_TIMEOUT_MS);
        pending.set(id, { resolve, reject, timer });
      });
      const req: Request = { k: 'req', id, from: nodeId, deviceId, command, params };
      let receivers: number;
      try {
        receivers = await opts.cmd().publish(rpcChannel(prefix, node), JSON.stringify(req));
      } catch (err) {
        receivers = -1;
        log.warn({ node, err: (err as Error).message }, 'cluster: a command could not be forwarded');
      }
      if (receivers <= 0) {
        const p = pending.get(id);
        pending.delete(id);
        if (p) clearTimeout(p.timer);
        answered.catch(() => undefined);
        throw new FluxError('node_unreachable', `node ${node} holds device '${deviceId}' but cannot be reached`, 503);
      }
      return answered;
    },
    async serve(sub, d) {
      downlink = d;
      sub.on('message', onMessage);
      await sub.subscribe(rpcChannel(prefix, nodeId));
    },
    stop() {
      downlink = undefined;
      for (const [id, p] of pending) {
        clearTimeout(p.timer);
        p.reject(new FluxError('cluster_stopping', 'this node is stopping', 503));
        pending.delete(id);
      }
    },
  };
}
