/**
 * FLUX's side of the GraphQL WebSocket process (runtime/graphql/socket-child.ts; docs/graphql.md
 * "Where the sockets live"). Forked on the first WebSocket upgrade at /api/graphql, it gets each
 * upgrade's socket, and the feed events its subscriptions can concern (the hub's interest: their
 * devices and products), batched once per event-loop turn. It asks FLUX who a token is and has
 * FLUX run queries and mutations. Bounded: while it starts, at most the connection limit
 * (`maxConnections`, 5,000) of upgrades wait; events past `MAX_PENDING` per turn, or while
 * `MAX_IN_FLIGHT` batches are unwritten, are dropped and counted. If it dies its clients are
 * disconnected (they reconnect); the next upgrade forks a new one.
 */
import { fork, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { ExecutionResult } from 'graphql';
import type { Feed, FeedEvent } from '../feed/index.ts';
import type { Logger } from '../log/index.ts';
import type { Users } from '../users/index.ts';
import type { HubInterest, HubStats } from './hub.ts';
import type { ForwardedOperation, SubscriptionServerOptions } from './subscriptions.ts';
import type { FromChild, SocketProcessInit, ToChild } from './socket-protocol.ts';

const CHILD = fileURLToPath(new URL('./socket-child.ts', import.meta.url));
const MAX_PENDING = 10_000;
const MAX_IN_FLIGHT = 8;
const STOP_GRACE_MS = 3000;

export interface SocketProcessDeps {
  feed: Pick<Feed, 'listen'>;
  users: Pick<Users, 'authenticate' | 'onChange'>;
  log: Logger;
  path: string;
  logLevel: string;
  limits: SubscriptionServerOptions;
  /** runs a query or mutation that came over a socket */
  run(op: ForwardedOperation): Promise<ExecutionResult>;
}

export type SocketStats = HubStats & { connections: number };

export interface SocketProcess {
  /** hands an upgrade at the GraphQL path over (the caller checked the path) */
  onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
  /** the process's last report, plus the events dropped on the way to it (in `dropped`) */
  stats(): SocketStats;
  dispose(): Promise<void>;
}

const ZERO: SocketStats = { subscriptions: 0, groups: 0, delivered: 0, dropped: 0, failed: 0, connections: 0 };
const refuse = (socket: Duplex, status: string) => socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);

export function createSocketProcess(deps: SocketProcessDeps): SocketProcess {
  const { log } = deps;
  let child: ChildProcess | undefined;
  let ready = false;
  let disposed = false;
  let reported: SocketStats = ZERO;
  /** counters of processes that exited, so the totals only grow */
  let past = { delivered: 0, dropped: 0, failed: 0 };
  let relayDropped = 0;
  let nextId = 0;
  const waiting: { req: http.IncomingMessage; socket: net.Socket; head: Buffer }[] = [];

  // The relay: feed events the child's subscriptions can concern, one batch per turn.
  let interest = { any: false, devices: new Set<string>(), products: new Set<string>() };
  let unlisten: (() => void) | undefined;
  let pending: FeedEvent[] = [];
  let scheduled = false;
  let inFlight = 0;
  const flush = () => {
    scheduled = false;
    const events = pending;
    pending = [];
    if (!child || !ready || events.length === 0) return;
    if (inFlight >= MAX_IN_FLIGHT) return void (relayDropped += events.length);
    inFlight++;
    send({ t: 'events', events }, () => inFlight--);
  };
  const onEvent = (ev: FeedEvent) => {
    if (ev.type === 'stream') return;
    if (!interest.any && !(ev.device_id !== undefined && interest.devices.has(ev.device_id)) && !(ev.product_key !== undefined && interest.products.has(ev.product_key))) return;
    if (pending.length >= MAX_PENDING) return void relayDropped++;
    pending.push(ev);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  const setInterest = (i: HubInterest) => {
    interest = { any: i.any, devices: new Set(i.devices), products: new Set(i.products) };
    const wanted = i.any || i.devices.length > 0 || i.products.length > 0;
    // Listening only while a subscription can use it: with no listener the pipeline builds no feed events.
    if (wanted) unlisten ??= deps.feed.listen(onEvent);
    else {
      unlisten?.();
      unlisten = undefined;
    }
  };

  const send = (m: ToChild, done?: () => void, handle?: net.Socket): void => {
    const c = child;
    if (!c?.connected) {
      handle?.destroy();
      return void done?.();
    }
    try {
      c.send(m, handle as never, (err) => {
        done?.();
        if (err && handle) handle.destroy();
      });
    } catch (err) {
      done?.();
      handle?.destroy();
      log.warn({ err }, 'graphql sockets: a message to the socket process failed');
    }
  };

  const reply = (id: number, p: Promise<unknown>) =>
    p.then(
      (value) => send({ t: 'reply', id, value }),
      (err: unknown) => send({ t: 'reply', id, error: err instanceof Error ? err.message : String(err) }),
    );

  const handOver = (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    // Bytes the client sent early (it should wait for the 101) go along with the head.
    const early = socket.readableLength > 0 ? (socket.read() as Buffer | null) : null;
    const id = ++nextId;
    const upgrade: ToChild = { t: 'upgrade', id, req: { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, remoteAddress: socket.remoteAddress ?? null }, head: early ? Buffer.concat([head, early]) : head };
    send(upgrade, undefined, socket);
    send({ t: 'go', id });
  };

  const onMessage = (from: ChildProcess, m: FromChild) => {
    // A message of a process already replaced (its last stats after its exit) would count twice.
    if (from !== child) return;
    switch (m.t) {
      case 'ready':
        ready = true;
        for (const w of waiting.splice(0)) if (!w.socket.destroyed) handOver(w.req, w.socket, w.head);
        return;
      case 'authenticate':
        return void reply(m.id, deps.users.authenticate(m.token));
      case 'run':
        // GraphQLErrors carry their path and extensions in toJSON(), which a structured clone would lose.
        return void reply(m.id, deps.run(m.op).then((r) => JSON.parse(JSON.stringify(r)) as unknown));
      case 'interest':
        return setInterest(m.interest);
      case 'stats':
        reported = m.stats;
        return;
    }
  };

  const unsubscribeUsers = deps.users.onChange(() => send({ t: 'users-changed' }));

  const start = (): ChildProcess => {
    const init: SocketProcessInit = { path: deps.path, logLevel: deps.logLevel, limits: deps.limits };
    // FLUX's large young generation (runtime/cli.ts) is for the pipeline's garbage; here it would only hold RSS.
    const execArgv = process.execArgv.filter((a) => !a.startsWith('--max-semi-space-size'));
    const c = fork(CHILD, [JSON.stringify(init)], { execArgv, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    c.on('message', (m: FromChild) => onMessage(c, m));
    c.on('error', (err) => log.error({ err }, 'graphql sockets: the socket process failed'));
    c.once('exit', (code, signal) => {
      if (!disposed) log.error({ code, signal }, 'graphql sockets: the socket process exited; its clients were disconnected, the next upgrade starts a new one');
      if (child === c) {
        child = undefined;
        ready = false;
        past = { delivered: past.delivered + reported.delivered, dropped: past.dropped + reported.dropped, failed: past.failed + reported.failed };
        reported = ZERO;
        inFlight = 0;
        setInterest({ any: false, devices: [], products: [] });
        for (const w of waiting.splice(0)) w.socket.destroy();
      }
    });
    log.debug({ pid: c.pid }, 'graphql sockets: socket process started');
    return c;
  };

  return {
    onUpgrade(req, socket, head) {
      if (disposed) return void socket.destroy();
      if (!(socket instanceof net.Socket)) return void refuse(socket, '501 Not Implemented');
      child ??= start();
      if (ready) return handOver(req, socket, head);
      if (waiting.length >= (deps.limits.maxConnections ?? 5000)) return void refuse(socket, '503 Service Unavailable');
      socket.on('error', () => socket.destroy());
      waiting.push({ req, socket, head });
    },
    stats: () => ({
      ...reported,
      delivered: past.delivered + reported.delivered,
      dropped: past.dropped + reported.dropped + relayDropped,
      failed: past.failed + reported.failed,
    }),
    async dispose() {
      disposed = true;
      unsubscribeUsers();
      setInterest({ any: false, devices: [], products: [] });
      for (const w of waiting.splice(0)) w.socket.destroy();
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      send({ t: 'dispose' });
      const timer = setTimeout(() => c.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
