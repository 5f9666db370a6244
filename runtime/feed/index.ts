/**
 * @module feed — the WebSocket live feed at /api/ws (docs/api.md): telemetry, device events, device
 * status, alarm and camera stream status events, filtered per client by type, product, device,
 * metric and event id. Any user's token may connect (every role reads); a client whose session
 * expires or whose token is revoked is closed with 4401.
 *
 * A slow client never slows the pipeline: an event is serialised once, and a client whose socket
 * buffer is past `highWaterBytes` misses events (counted and reported to it when it catches up);
 * one that stays behind for `slowCloseMs` is closed with 1013.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import { bearerToken, type Users } from '../users/index.ts';
import { counter, gauge } from '../metrics/index.ts';

export const FEED_PATH = '/api/ws';

export type FeedEventType = 'telemetry' | 'status' | 'alarm' | 'stream' | 'event';

export interface FeedEvent {
  type: FeedEventType;
  device_id?: string;
  product_key?: string;
  ts: number;
  /** telemetry: `{ metric: value }` */
  values?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface FeedFilter {
  events?: FeedEventType[];
  product?: string;
  device?: string;
  metric?: string[];
  /** event ids (type `event` only) */
  event?: string[];
}

export interface Feed extends FluxModule {
  /** to this node's clients and listeners, and through the relay to the other nodes' */
  publish(ev: FeedEvent): void;
  /** to this node's clients and listeners only (an event relayed from another node) */
  deliver(ev: FeedEvent): void;
  /**
   * WebSocket clients plus in-process listeners, plus one while another node of a cluster listens:
   * publishers skip building events while it is 0
   */
  clients(): number;
  /** this node's WebSocket clients plus in-process listeners */
  localClients(): number;
  /** An in-process listener of every event (GraphQL subscriptions); returns the unsubscribe function. */
  listen(listener: (ev: FeedEvent) => void): () => void;
}

/** Where published events also go: the other nodes of a cluster (runtime/cluster/feed-relay.ts). */
export interface FeedRelay {
  send(ev: FeedEvent): void;
  /** whether another node has a listener */
  othersListen(): boolean;
  /** this node's first feed client or listener arrived (it had none): tell the other nodes now */
  listening(): void;
}

export interface FeedOptions {
  relay?: FeedRelay;
  /** who may connect: any valid token (every role may read the feed); closed with 4401 when it expires or is revoked */
  users: Users;
  highWaterBytes?: number;
  slowCloseMs?: number;
  maxClients?: number;
}

interface Client {
  ws: WebSocket;
  filter: FeedFilter;
  dropped: number;
  behindSince: number;
  /** the token it connected with: checked again when users or tokens change */
  token: string;
  /** closes it when its login session ends */
  expiry?: NodeJS.Timeout;
}

/** The close code for a token that expired or was revoked while connected (4000 + HTTP 401). */
export const FEED_CLOSE_UNAUTHORIZED = 4401;

const EVENT_TYPES: readonly FeedEventType[] = ['telemetry', 'status', 'alarm', 'stream', 'event'];

/** The close code for a filter the feed does not understand (4000 + HTTP 400). */
export const FEED_CLOSE_BAD_FILTER = 4400;
/** Filter keys of /api/ws (`access_token` only in the URL). */
const FILTER_KEYS = ['events', 'product', 'device', 'metric', 'event'];

/** A filter key or event type the feed does not know: refused, naming it (a typo must not mean "everything"). */
export class FilterError extends Error {}

export function parseFilter(src: Record<string, unknown>, extraKeys: readonly string[] = []): FeedFilter {
  for (const k of Object.keys(src)) if (!FILTER_KEYS.includes(k) && !extraKeys.includes(k)) throw new FilterError(`unknown filter key '${k.slice(0, 40)}' (known: ${FILTER_KEYS.join(', ')})`);
  const list = (v: unknown) => (Array.isArray(v) ? v.map(String) : typeof v === 'string' && v !== '' ? v.split(',') : undefined);
  const named = list(src.events);
  for (const e of named ?? []) if (!(EVENT_TYPES as readonly string[]).includes(e)) throw new FilterError(`unknown event type '${e.slice(0, 40)}' (known: ${EVENT_TYPES.join(', ')})`);
  const events = named as FeedEventType[] | undefined;
  return {
    events: events?.length ? events : undefined,
    product: typeof src.product === 'string' && src.product ? src.product : undefined,
    device: typeof src.device === 'string' && src.device ? src.device : undefined,
    metric: list(src.metric),
    event: list(src.event),
  };
}

function project(ev: FeedEvent, f: FeedFilter): FeedEvent | null {
  if (f.events && !f.events.includes(ev.type)) return null;
  if (f.device && ev.device_id !== f.device) return null;
  if (f.product && ev.product_key !== f.product) return null;
  if (f.event && ev.type === 'event' && !f.event.includes(String(ev.event_id))) return null;
  if (f.metric && ev.type === 'telemetry') {
    const values: Record<string, unknown> = {};
    let any = false;
    for (const m of f.metric) {
      if (ev.values && m in ev.values) {
        values[m] = ev.values[m];
        any = true;
      }
    }
    return any ? { ...ev, values } : null;
  }
  return ev;
}

export function createFeed(ctx: FluxContext, server: http.Server, opts: FeedOptions): Feed {
  const log = ctx.log.child({ module: 'feed' });
  const highWater = opts.highWaterBytes ?? 1 << 20;
  const slowCloseMs = opts.slowCloseMs ?? 10_000;
  const maxClients = opts.maxClients ?? 1000;
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  const clients = new Set<Client>();
  const listeners = new Set<(ev: FeedEvent) => void>();
  const localCount = () => clients.size + listeners.size;
  /** after adding a client or listener: the first one is told to the other nodes at once (the relay) */
  const added = () => {
    if (localCount() === 1) opts.relay?.listening();
  };
  const sent = counter(ctx.metrics, 'flux_feed_events_sent_total', 'live feed events written to clients');
  const dropped = counter(ctx.metrics, 'flux_feed_events_dropped_total', 'live feed events a slow client missed');
  const connected = gauge(ctx.metrics, 'flux_feed_clients', 'connected live feed clients');

  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== FEED_PATH) return; // other paths belong to other listeners (MQTT over WS, the editor)
    const token = bearerToken(req.headers.authorization) ?? url.searchParams.get('access_token') ?? '';
    opts.users.authenticate(token).then(
      (who) => {
        if (who) return accept(req, socket, head, url, token, who.expires_at);
        socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"error":{"code":"unauthorized","message":"missing, invalid or expired token (Authorization: Bearer or ?access_token=)"}}');
      },
      (err: unknown) => {
        log.error({ err }, 'feed: could not check a token');
        socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
      },
    );
  };

  // Every role may read the feed: it carries what GET routes (role viewer) show.
  const accept = (req: http.IncomingMessage, socket: Duplex, head: Buffer, url: URL, token: string, expiresAt: number | undefined) => {
    if (socket.destroyed) return; // gone while its token was checked
    if (clients.size >= maxClients) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      let filter: FeedFilter;
      try {
        filter = parseFilter(Object.fromEntries(url.searchParams), ['access_token']);
      } catch (err) {
        ws.close(FEED_CLOSE_BAD_FILTER, (err as Error).message.slice(0, 120));
        return;
      }
      const client: Client = { ws, filter, dropped: 0, behindSince: 0, token };
      if (expiresAt !== undefined) {
        client.expiry = setTimeout(() => ws.close(FEED_CLOSE_UNAUTHORIZED, 'the login session expired'), Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1));
        client.expiry.unref();
      }
      clients.add(client);
      connected.set(clients.size);
      added();
      ws.send(JSON.stringify({ type: 'hello', filter: client.filter }));
      ws.on('message', (data) => {
        // A client that sends without reading would have every answer wait here (a 60 KB filter is
        // answered with up to ~190 KB): past the mark it is cut off, as deliver() does.
        if (ws.bufferedAmount > highWater) {
          log.warn('closing a live feed client that sends without reading its answers');
          ws.close(1013, 'too slow');
          ws.terminate();
          return;
        }
        try {
          const m = JSON.parse(String(data)) as { subscribe?: Record<string, unknown> };
          if (!m || typeof m.subscribe !== 'object') throw new Error('expected {"subscribe": {events, product, device, metric}}');
          client.filter = parseFilter(m.subscribe);
          ws.send(JSON.stringify({ type: 'subscribed', filter: client.filter }));
        } catch (err) {
          ws.send(JSON.stringify({ type: 'error', error: { code: 'bad_request', message: (err as Error).message } }));
        }
      });
      ws.on('close', () => {
        clearTimeout(client.expiry);
        clients.delete(client);
        connected.set(clients.size);
      });
      ws.on('error', (err) => log.debug({ err }, 'feed client error'));
    });
  };

  // A token revoked, or its user deleted or given a new password, while connected: the client goes.
  const recheck = () => {
    for (const c of clients) {
      opts.users.authenticate(c.token).then(
        (who) => void (who ? undefined : c.ws.close(FEED_CLOSE_UNAUTHORIZED, 'the token was revoked')),
        (err: unknown) => log.debug({ err }, 'feed: could not check a token again'),
      );
    }
  };
  let unsubscribe: (() => void) | undefined;

  const statusOwner = {};
  return {
    name: 'feed',
    async start() {
      server.on('upgrade', onUpgrade);
      unsubscribe = opts.users.onChange(recheck);
      ctx.bus.on('status', statusOwner, (ev) =>
        this.publish({ type: 'status', device_id: ev.deviceId, product_key: ev.productKey, ts: ev.ts, status: ev.status, reason: ev.reason, transport: ev.transport }),
      );
      ctx.bus.on('stream', statusOwner, (ev) =>
        this.publish({ type: 'stream', stream_id: ev.streamId, device_id: ev.deviceId ?? undefined, ts: ev.ts, status: ev.status, previous: ev.previous, error: ev.error }),
      );
    },
    async stop() {
      server.off('upgrade', onUpgrade);
      unsubscribe?.();
      ctx.bus.removeOwner(statusOwner);
      const closing = [...clients].map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.ws.readyState === c.ws.CLOSED) return resolve();
            // A client that does not answer the close frame within 1 s is cut off.
            const timer = setTimeout(() => c.ws.terminate(), 1000);
            c.ws.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
            c.ws.close(1001, 'server shutting down');
          }),
      );
      clients.clear();
      await Promise.all(closing);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
    publish(ev) {
      this.deliver(ev);
      opts.relay?.send(ev);
    },
    deliver(ev) {
      for (const l of listeners) {
        try {
          l(ev);
        } catch (err) {
          log.warn({ err }, 'a live feed listener failed');
        }
      }
      if (clients.size === 0) return;
      let full: string | undefined;
      const now = Date.now();
      for (const c of clients) {
        const p = project(ev, c.filter);
        if (!p) continue;
        if (c.ws.readyState !== 1) continue;
        if (c.ws.bufferedAmount > highWater) {
          c.dropped++;
          dropped.inc();
          if (!c.behindSince) c.behindSince = now;
          else if (now - c.behindSince > slowCloseMs) {
            log.warn({ dropped: c.dropped }, 'closing a live feed client that stayed too slow');
            c.ws.close(1013, 'too slow');
            c.ws.terminate();
            clients.delete(c);
          }
          continue;
        }
        if (c.dropped) {
          c.ws.send(JSON.stringify({ type: 'dropped', count: c.dropped, ts: now }));
          c.dropped = 0;
        }
        c.behindSince = 0;
        c.ws.send(p === ev ? (full ??= JSON.stringify(ev)) : JSON.stringify(p));
        sent.inc();
      }
    },
    clients: () => localCount() + (opts.relay?.othersListen() ? 1 : 0),
    localClients: localCount,
    listen(listener) {
      listeners.add(listener);
      added();
      return () => listeners.delete(listener);
    },
    health(): ComponentHealth {
      return { ok: true, clients: clients.size };
    },
  };
}
