/**
 * Message traces from every node (docs/cluster.md "Reading: raw traffic, replays, the trace"): a
 * trace lives in the memory of the node that handled the uplink (runtime/trace), which need not be
 * the node an operator asks. `/api/trace/{id}` and `/api/devices/{id}/trace` ask every live node on
 * Redis pub/sub (`<prefix>trace:<node>`, one channel per node) and merge the answers with their own.
 *
 * Bounded: at most MAX_PENDING lookups wait at once, each at most LOOKUP_TIMEOUT_MS (a node that
 * does not answer in time is left out); answers larger than MAX_MESSAGE_BYTES are dropped.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { FluxError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { MessageTrace, TraceLookup, Tracer } from '../trace/index.ts';
import type { ClusterScripts } from './scripts.ts';

const LOOKUP_TIMEOUT_MS = 2_000;
const MAX_PENDING = 100;
/** 100 traces of at most 64 spans each fit well below this */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

type Ask = { k: 'ask'; id: string; from: string; msgId: string } | { k: 'ask'; id: string; from: string; deviceId: string; last: number };
interface Found {
  k: 'found';
  id: string;
  traces: MessageTrace[];
}

export const traceChannel = (prefix: string, nodeId: string) => `${prefix}trace:${nodeId}`;

export interface ClusterTraces {
  /** what the API reads: this node's traces (`local`) merged with those of the other nodes */
  lookup(local: Tracer): TraceLookup;
  /** starts answering this node's channel */
  serve(sub: Redis, tracer: Tracer): Promise<void>;
  stop(): void;
}

/** One message's spans from several nodes (the node that received it, the one that processed it), in time order. */
function merge(traces: MessageTrace[]): MessageTrace {
  if (traces.length === 1) return traces[0]!;
  const first = traces.reduce((a, b) => (b.received_at < a.received_at ? b : a));
  const spans = traces.flatMap((t) => t.spans).sort((a, b) => a.at - b.at);
  const dropped = traces.reduce((n, t) => n + (t.dropped_spans ?? 0), 0);
  return dropped ? { ...first, spans, dropped_spans: dropped } : { ...first, spans };
}

function mergeAll(traces: MessageTrace[]): MessageTrace[] {
  const byId = new Map<string, MessageTrace[]>();
  for (const t of traces) {
    const list = byId.get(t.id);
    if (list) list.push(t);
    else byId.set(t.id, [t]);
  }
  return [...byId.values()].map(merge).sort((a, b) => b.received_at - a.received_at);
}

export function createClusterTraces(opts: { nodeId: string; prefix: string; cmd: () => Redis; scripts: () => ClusterScripts; log: Logger }): ClusterTraces {
  const { nodeId, prefix, log } = opts;
  const pending = new Map<string, { got: MessageTrace[]; answers: number; expected: number; done: () => void }>();
  let tracer: Tracer | undefined;

  function onMessage(channel: string, text: string): void {
    if (channel !== traceChannel(prefix, nodeId)) return;
    if (text.length > MAX_MESSAGE_BYTES) return log.warn({ bytes: text.length }, 'cluster: oversized trace message dropped');
    let msg: Ask | Found;
    try {
      msg = JSON.parse(text) as Ask | Found;
    } catch {
      return log.warn('cluster: unreadable trace message dropped');
    }
    if (msg.k === 'ask' && typeof msg.from === 'string' && typeof msg.id === 'string') {
      if (!tracer) return;
      let traces: MessageTrace[];
      if ('msgId' in msg && typeof msg.msgId === 'string') {
        const t = tracer.get(msg.msgId);
        traces = t ? [t] : [];
      } else if ('deviceId' in msg && typeof msg.deviceId === 'string') {
        traces = tracer.byDevice(msg.deviceId, Math.min(100, Math.max(1, Number(msg.last) || 10)));
      } else return;
      const found: Found = { k: 'found', id: msg.id, traces };
      opts
        .cmd()
        .publish(traceChannel(prefix, msg.from), JSON.stringify(found))
        .catch((err: Error) => log.warn({ to: msg.from, err: err.message }, 'cluster: a trace answer could not be sent'));
    } else if (msg.k === 'found' && Array.isArray(msg.traces)) {
      const p = pending.get(msg.id);
      if (!p) return; // after its timeout
      p.got.push(...msg.traces);
      if (++p.answers >= p.expected) p.done();
    }
  }

  /** what the other live nodes hold; a node that does not answer within the timeout is left out */
  async function ask(body: { msgId: string } | { deviceId: string; last: number }): Promise<MessageTrace[]> {
    if (pending.size >= MAX_PENDING) throw new FluxError('cluster_busy', `${MAX_PENDING} trace lookups already wait for other nodes`, 503);
    let others: string[];
    try {
      others = (await opts.scripts().list()).filter((n) => n.ttlMs > 0 && n.id !== nodeId).map((n) => n.id);
    } catch (err) {
      log.warn({ err: (err as Error).message }, "cluster: the other nodes' traces cannot be read (Redis does not answer); this node's only");
      return [];
    }
    if (others.length === 0) return [];
    const id = randomUUID();
    const entry = { got: [] as MessageTrace[], answers: 0, expected: 0, done: () => {} };
    const finished = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, LOOKUP_TIMEOUT_MS);
      entry.done = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    pending.set(id, entry);
    try {
      const text = JSON.stringify({ k: 'ask', id, from: nodeId, ...body });
      const receivers = await Promise.all(others.map((n) => opts.cmd().publish(traceChannel(prefix, n), text).catch(() => 0)));
      entry.expected = receivers.filter((r) => r > 0).length;
      if (entry.answers >= entry.expected) entry.done();
      await finished;
      return entry.got;
    } finally {
      pending.delete(id);
    }
  }

  return {
    lookup: (local) => ({
      async get(msgId) {
        const here = local.get(msgId);
        const all = [...(here ? [here] : []), ...(await ask({ msgId }))];
        return all.length ? merge(all) : undefined;
      },
      async byDevice(deviceId, last) {
        const all = [...local.byDevice(deviceId, last), ...(await ask({ deviceId, last }))];
        return mergeAll(all).slice(0, last);
      },
    }),
    async serve(sub, t) {
      tracer = t;
      sub.on('message', onMessage);
      await sub.subscribe(traceChannel(prefix, nodeId));
    },
    stop() {
      tracer = undefined;
      for (const p of pending.values()) p.done();
    },
  };
}
