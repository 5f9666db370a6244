/**
 * The GraphQL WebSocket process: forked by runtime/graphql/socket-process.ts, it owns every
 * graphql-ws socket at /api/graphql, so that writing 10,000 subscription results a second costs
 * FLUX's pipeline thread nothing but handing the events over (docs/graphql.md "Where the sockets
 * live"). FLUX hands it each upgrade's socket; it answers the handshake, authenticates through
 * FLUX, runs subscriptions over the events FLUX relays (the same hub and outlets as in-process), and
 * sends queries and mutations back to FLUX to run. It exits when FLUX's IPC channel closes.
 */
import net from 'node:net';
import type http from 'node:http';
import { createLogger } from '../log/index.ts';
import type { FeedEvent } from '../feed/index.ts';
import type { Principal } from '../users/index.ts';
import { createHub } from './hub.ts';
import { createSubscriptionServer, type ForwardedOperation } from './subscriptions.ts';
import { maskError, subscriptionSchema, yogaOver } from './yoga.ts';
import type { FromChild, SocketProcessInit, ToChild } from './socket-protocol.ts';
import type { ExecutionResult } from 'graphql';

const init = JSON.parse(process.argv[2] ?? '{}') as SocketProcessInit;
const log = createLogger({ level: init.logLevel as never }).child({ module: 'graphql-sockets' });
const send = (m: FromChild) => void process.send?.(m);

// Calls to FLUX (authenticate, run), answered by id; each has a deadline so none waits for ever.
const CALL_TIMEOUT_MS = 30_000;
let nextId = 0;
const calls = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
function call<T>(m: { t: 'authenticate'; token: string } | { t: 'run'; op: ForwardedOperation }): Promise<T> {
  const id = ++nextId;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      calls.delete(id);
      reject(new Error(`FLUX did not answer ${m.t} within ${CALL_TIMEOUT_MS} ms`));
    }, CALL_TIMEOUT_MS);
    calls.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
    send({ ...m, id } as FromChild);
  });
}

const listeners = new Set<(ev: FeedEvent) => void>();
const changeListeners = new Set<() => void>();

let interestQueued = false;
const hub = createHub(
  {
    listen(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  },
  {
    onRenderError: (err, topic) => log.error({ err, topic }, 'graphql: executing a subscription result failed'),
    // The interest goes to FLUX once per turn, then the stats that count the subscriptions: a client
    // that sees the subscription counted in /api/health knows FLUX already relays its events.
    onGroupsChange() {
      if (interestQueued) return;
      interestQueued = true;
      setImmediate(() => {
        interestQueued = false;
        send({ t: 'interest', interest: hub.interest() });
        sendStats();
      });
    },
  },
);

let open = 0;
const sendStats = () => send({ t: 'stats', stats: { ...hub.stats(), connections: open } });
setInterval(sendStats, 1000).unref();
// While events flow, the counters (delivered, dropped) reach FLUX's /api/health within 100 ms.
let statsTimer: NodeJS.Timeout | undefined;
const statsSoon = () =>
  (statsTimer ??= setTimeout(() => {
    statsTimer = undefined;
    sendStats();
  }, 100));

const yoga = yogaOver<{ principal: Principal }>(subscriptionSchema(hub), init.path);
const server = createSubscriptionServer(
  init.path,
  {
    users: {
      authenticate: (token) => call<Principal | null>({ t: 'authenticate', token }),
      onChange(fn) {
        changeListeners.add(fn);
        return () => changeListeners.delete(fn);
      },
    },
    hub,
    yoga,
    maskError,
    log,
    onConnections(n) {
      open = n;
      sendStats();
    },
    // The result crossed as JSON; graphql-ws serialises its errors with their toJSON().
    forward: (op) =>
      call<ExecutionResult>({ t: 'run', op }).then((r) => (r.errors ? { ...r, errors: r.errors.map((e) => ({ ...e, toJSON: () => e })) as never } : r)),
  },
  init.limits,
);

let disposing = false;
async function dispose(code: number): Promise<void> {
  if (disposing) return;
  disposing = true;
  for (const c of calls.values()) clearTimeout(c.timer);
  await server.dispose().catch((err: unknown) => log.warn({ err }, 'graphql sockets: closing failed'));
  process.exit(code);
}

/** sockets handed over, waiting for their `go` (runtime/graphql/socket-protocol.ts) */
const upgrades = new Map<number, { m: Extract<ToChild, { t: 'upgrade' }>; socket: net.Socket }>();

process.on('message', (m: ToChild, handle: unknown) => {
  switch (m.t) {
    case 'events':
      for (const ev of m.events) for (const fn of listeners) fn(ev);
      statsSoon();
      return;
    case 'upgrade': {
      if (!(handle instanceof net.Socket)) return;
      if (disposing) return void handle.destroy();
      handle.on('error', () => handle.destroy());
      upgrades.set(m.id, { m, socket: handle });
      return;
    }
    case 'go': {
      const u = upgrades.get(m.id);
      if (!u) return;
      upgrades.delete(m.id);
      // The upgrade request as ws and graphql-ws read it (method, url, headers; the socket's address for the audit log).
      const req = { method: u.m.req.method, url: u.m.req.url, headers: u.m.req.headers, socket: { remoteAddress: u.m.req.remoteAddress ?? undefined } } as unknown as http.IncomingMessage;
      if (u.socket.destroyed) return;
      server.onUpgrade(req, u.socket, Buffer.from(u.m.head));
      return;
    }
    case 'reply': {
      const c = calls.get(m.id);
      if (!c) return;
      calls.delete(m.id);
      clearTimeout(c.timer);
      if (m.error !== undefined) c.reject(new Error(m.error));
      else c.resolve(m.value);
      return;
    }
    case 'users-changed':
      for (const fn of changeListeners) fn();
      return;
    case 'dispose':
      void dispose(0);
      return;
  }
});
// FLUX gone (exited, killed): its sockets go with this process.
process.on('disconnect', () => void dispose(0));
send({ t: 'ready' });
