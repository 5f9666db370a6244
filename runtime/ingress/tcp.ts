/**
 * Raw TCP ingress (docs/broker.md "TCP ingress"): a product whose `transport.tcp` declares `{ port, framing }`
 * gets a listener; its stream is cut into frames, the device is identified by a login frame
 * (docs/tcp-login.md) or by the `device_id` its plugin decodes, and each later frame becomes a `raw`
 * uplink on the bus. Until identified nothing is stored. Status follows the connection.
 */
import net from 'node:net';
import { newMessageId } from '../bus/index.ts';
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import type { DeviceIdentity, Product } from '../registry/index.ts';
import { ConfigError } from '../errors/index.ts';
import { counter } from '../metrics/index.ts';
import { createFramer, encodeFrame, framePayload, parseFraming, FramingError, type Framer, type Framing } from '../framing/index.ts';
import type { Presence } from './presence.ts';
import type { ConnectionHolder } from './revocation.ts';

/** `product.transport.tcp`: `{ port, framing }` (framing defaults to newline-delimited). */
export interface TcpTransport {
  port: number;
  framing: Framing;
}

export interface TcpIngressOptions {
  /** ms a connection has to identify itself (default 10 s) */
  loginTimeoutMs?: number;
  /** connections per product port (default 10,000) */
  maxConnections?: number;
  /** how often products are re-read for added/changed TCP ports (default 5 s; 0: only on sync()) */
  syncIntervalMs?: number;
}

/** `heldBy`: the device's connection, for closing it when its access is revoked (revocation.ts) */
export interface TcpIngress extends FluxModule, ConnectionHolder {
  /** Re-reads the products and opens, re-opens or closes TCP listeners to match. */
  sync(): Promise<void>;
  /** the port actually listened on for a product (by key), when it has one */
  portOf(productKey: string): number | undefined;
  isConnected(deviceId: string): boolean;
  /** Writes bytes to the device's TCP connection (wrapped in its framing when `frame`); false when it has none. */
  write(deviceId: string, bytes: Buffer, frame: boolean): boolean;
}

/**
 * Reads `transport.tcp` of a product; null when it declares none. Throws FramingError on a bad declaration.
 * Without `transport.tcp.framing` the framing is the product plugin's declared one (`pluginFraming`, from
 * the `plugins` service's meta), else newline-delimited.
 */
export function tcpTransportOf(product: Pick<Product, 'transport'>, pluginFraming?: Framing | null): TcpTransport | null {
  const tcp = (product.transport as { tcp?: Record<string, unknown> } | undefined)?.tcp;
  if (!tcp || typeof tcp !== 'object') return null;
  const port = tcp.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw new FramingError('transport.tcp.port must be a port number (0 = any free port)');
  return { port, framing: parseFraming(tcp.framing ?? pluginFraming ?? { type: 'delimiter' }) };
}

/** What the TCP ingress uses of the plugin host: a device id decoded from a first frame, and a plugin's framing. */
export interface TcpPlugins {
  decode(pluginId: string, bytes: Uint8Array): Promise<unknown>;
  /** the active version's meta (`framing` for the TCP ingress) */
  meta(pluginId: string): { framing?: Framing | null } | undefined;
}

/** The framing the product's protocol plugin declares, when the plugin host runs and has it. */
function pluginFramingOf(plugins: TcpPlugins | undefined, product: Pick<Product, 'protocol_plugin_id'>): Framing | null {
  if (!product.protocol_plugin_id || !plugins) return null;
  return plugins.meta(product.protocol_plugin_id)?.framing ?? null;
}

interface Listener {
  product: Product;
  transport: TcpTransport;
  /** the declaration it was opened with, to notice changes */
  signature: string;
  server: net.Server;
  port: number;
  sockets: Set<net.Socket>;
}

interface Conn {
  socket: net.Socket;
  listener: Listener;
  framer: Framer;
  identity?: DeviceIdentity;
  /** the stamp of the secret its login frame presented (revocation.ts); undefined: named by its plugin */
  stamp?: string;
  release?: (reason: string) => void;
  /** why FLUX closed it, for the presence release */
  closeReason?: string;
}

const MAX_UNIDENTIFIED_FRAMES = 3;
const MAX_QUEUED_FRAMES = 64;
const NO_BYTES = Buffer.alloc(0);
/**
 * Before a connection is identified nobody is accountable for it: its frames are at most this large
 * (a login frame is ~300 bytes; a fixed-size framing keeps its size), and it may send at most
 * PRELOGIN_BYTES in all. Past either it is closed. With the framer's linear search this bounds the
 * work a stranger can cause per connection (docs/broker.md "Before identification").
 */
export const PRELOGIN_MAX_FRAME = 4096;
export const PRELOGIN_BYTES = 16 * 1024;
const preLoginMax = (f: Framing) => (f.type === 'fixed' ? f.size : Math.min(f.max, PRELOGIN_MAX_FRAME));

/** The TCP ingress shares `presence` with the other transports; without `plugins` no frame is decoded before login. */
export function createTcpIngress(ctx: FluxContext, presence: Presence, plugins: TcpPlugins | undefined, opts: TcpIngressOptions = {}): TcpIngress {
  const log = ctx.log.child({ module: 'tcp-ingress' });
  const loginTimeoutMs = opts.loginTimeoutMs ?? 10_000;
  const listeners = new Map<string, Listener>(); // by product id
  const byDevice = new Map<string, Conn>();
  let timer: NodeJS.Timeout | undefined;
  let syncing: Promise<void> | undefined;
  let running = false;
  const framesTotal = counter(ctx.metrics, 'flux_tcp_frames_total', 'TCP frames received from identified devices');
  const closedTotal = counter(ctx.metrics, 'flux_tcp_closed_total', 'TCP connections closed by FLUX, by reason', ['reason']);

  function close(conn: Conn, reason: string, metric: string): void {
    if (conn.socket.destroyed) return;
    closedTotal.inc({ reason: metric });
    log.warn({ remote: conn.socket.remoteAddress, product: conn.listener.product.key, deviceId: conn.identity?.device.id, reason }, 'TCP connection closed');
    conn.socket.destroy();
  }

  function identified(conn: Conn, identity: DeviceIdentity): void {
    conn.identity = identity;
    conn.framer.limit(conn.listener.transport.framing.max);
    const prev = byDevice.get(identity.device.id);
    if (prev && prev !== conn) close(prev, 'the device connected again (takeover)', 'takeover');
    byDevice.set(identity.device.id, conn);
    conn.release = presence.connected(identity, 'tcp');
  }

  function emitFrame(conn: Conn, frame: Buffer): void {
    const { device, product } = conn.identity!;
    framesTotal.inc();
    // appended to the uplink log, then on the bus once durable (raw TCP frames carry no acknowledgement)
    ctx.journal.accept({ id: newMessageId(), deviceId: device.id, productId: product.id, productKey: product.key, type: 'raw', ts: Date.now(), payload: frame, topic: `/${product.key}/${device.id}/raw`, transport: 'tcp', logSeq: undefined }, (err) => {
      if (err) log.warn({ deviceId: device.id, reason: err.code }, 'TCP frame refused by the uplink log');
    });
    if (ctx.journal.behind() && !conn.socket.isPaused()) {
      // the pipeline is behind: stop reading this device until it drains (TCP pushes back)
      conn.socket.pause();
      ctx.journal.onDrain(() => {
        if (!conn.socket.destroyed) conn.socket.resume();
      });
    }
  }

  /** Identifies the connection from its first frames: a login frame, or the device_id the product's plugin decodes. */
  async function identify(conn: Conn, frame: Buffer): Promise<'login' | 'data' | null> {
    const { product, transport } = conn.listener;
    const body = framePayload(transport.framing, frame);
    if (body[0] === 0x7b /* { */) {
      let login: { device_id?: unknown; secret?: unknown } | undefined;
      try {
        login = JSON.parse(body.toString('utf8'));
      } catch {
        login = undefined;
      }
      if (login && typeof login.device_id === 'string' && typeof login.secret === 'string') {
        const access = await ctx.registry.devices.credential(login.device_id, login.secret);
        const identity = access?.identity;
        const reason = !identity ? 'unknown device or wrong secret' : !identity.device.enabled ? 'device disabled' : identity.product.id !== product.id ? `device belongs to product ${identity.product.key}` : '';
        if (reason) {
          if (transport.framing.type === 'length' || transport.framing.type === 'delimiter') conn.socket.write(encodeFrame(transport.framing, Buffer.from('{"login":"denied"}')));
          close(conn, `login refused: ${reason} (device ${login.device_id})`, 'login_refused');
          return null;
        }
        conn.stamp = access!.stamp;
        identified(conn, identity!);
        if (transport.framing.type === 'length' || transport.framing.type === 'delimiter') conn.socket.write(encodeFrame(transport.framing, Buffer.from('{"login":"ok"}')));
        return 'login';
      }
    }
    if (product.protocol_plugin_id && plugins) {
      const decoded = await plugins.decode(product.protocol_plugin_id, frame).catch(() => undefined);
      const first = Array.isArray(decoded) ? decoded[0] : decoded;
      const deviceId = (first as { device_id?: unknown } | undefined)?.device_id;
      if (typeof deviceId === 'string') {
        const identity = await ctx.registry.devices.identity(deviceId);
        if (identity && identity.device.enabled && identity.product.id === product.id) {
          identified(conn, identity);
          return 'data';
        }
      }
    }
    return null;
  }

  function handle(listener: Listener, socket: net.Socket): void {
    const framer = createFramer(listener.transport.framing);
    framer.limit(preLoginMax(listener.transport.framing));
    const conn: Conn = { socket, listener, framer };
    const queue: Buffer[] = [];
    let unidentified = 0;
    let preLoginBytes = 0;
    let working = false;
    listener.sockets.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 60_000);
    const loginTimer = setTimeout(() => {
      if (!conn.identity) close(conn, `not identified within ${loginTimeoutMs} ms`, 'login_timeout');
    }, loginTimeoutMs);

    const overBudget = () => close(conn, `${preLoginBytes} bytes without a login or a decodable device_id (at most ${PRELOGIN_BYTES} before identification)`, 'prelogin_bytes');

    /** Takes the next frames the framer holds (after an identification, or a dropped unidentified frame). */
    const pull = (): boolean => {
      if (framer.buffered() === 0) return false;
      try {
        const more = framer.push(NO_BYTES, conn.identity ? Infinity : 1);
        for (const f of more) queue.push(f);
        return more.length > 0;
      } catch (err) {
        if (!(err instanceof FramingError)) throw err;
        close(conn, err.message, 'framing');
        return false;
      }
    };

    const work = async () => {
      if (working) return;
      working = true;
      try {
        while (!socket.destroyed && (queue.length || pull())) {
          const frame = queue.shift()!;
          if (conn.identity) {
            emitFrame(conn, frame);
            continue;
          }
          const r = await identify(conn, frame);
          if (r === 'data') emitFrame(conn, frame);
          else if (r === null && !socket.destroyed && ++unidentified >= MAX_UNIDENTIFIED_FRAMES) {
            close(conn, `${unidentified} frames without a login or a decodable device_id`, 'unidentified');
          }
        }
      } catch (err) {
        log.error({ err, product: listener.product.key }, 'TCP frame handling failed');
        close(conn, 'internal error', 'error');
      } finally {
        working = false;
        if (!conn.identity && preLoginBytes > PRELOGIN_BYTES) overBudget();
        if (!socket.destroyed && queue.length < MAX_QUEUED_FRAMES / 2 && socket.isPaused() && !ctx.journal.behind()) socket.resume();
      }
    };

    socket.on('data', (chunk: Buffer) => {
      if (!conn.identity) preLoginBytes += chunk.length;
      let frames: Buffer[];
      try {
        // unidentified: one frame at a time; the rest stays unread until that frame identified it
        frames = framer.push(chunk, conn.identity ? Infinity : 1);
      } catch (err) {
        if (err instanceof FramingError) return close(conn, err.message, 'framing');
        throw err;
      }
      if (frames.length === 0) {
        if (!conn.identity && !working && preLoginBytes > PRELOGIN_BYTES) overBudget();
        return;
      }
      if (conn.identity && !working && queue.length === 0) {
        for (const f of frames) emitFrame(conn, f); // hot path: no queue once identified
        return;
      }
      queue.push(...frames);
      // unidentified: nothing more is read until the queued frames identified it (or not)
      if (queue.length >= MAX_QUEUED_FRAMES || !conn.identity) socket.pause();
      void work();
    });
    socket.on('error', (err) => log.debug({ err: err.message, product: listener.product.key }, 'TCP socket error'));
    socket.on('close', () => {
      clearTimeout(loginTimer);
      listener.sockets.delete(socket);
      if (conn.identity && byDevice.get(conn.identity.device.id) === conn) byDevice.delete(conn.identity.device.id);
      conn.release?.(conn.closeReason ?? 'connection closed');
    });
  }

  async function open(product: Product, transport: TcpTransport, signature: string): Promise<Listener> {
    const server = net.createServer({ noDelay: true, keepAlive: true });
    server.maxConnections = opts.maxConnections ?? 10_000;
    const listener: Listener = { product, transport, signature, server, port: 0, sockets: new Set() };
    server.on('connection', (socket) => handle(listener, socket));
    server.on('drop', (d) => log.warn({ product: product.key, remote: d?.remoteAddress, max: server.maxConnections }, 'TCP connection dropped: connection limit reached'));
    listener.port = await new Promise<number>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'EADDRINUSE' || err.code === 'EACCES' ? new ConfigError('transport.tcp.port', `TCP port ${transport.port} of product ${product.key} is ${err.code === 'EADDRINUSE' ? 'in use' : 'privileged'}; change the product's transport.tcp.port`) : err),
      );
      server.listen(transport.port, ctx.settings.host, () => resolve((server.address() as net.AddressInfo).port));
    });
    server.on('error', (err) => log.error({ err, product: product.key }, 'TCP listener error'));
    log.info({ product: product.key, port: listener.port, framing: transport.framing.type }, 'TCP ingress listening');
    return listener;
  }

  async function shut(l: Listener): Promise<void> {
    for (const s of l.sockets) s.destroy();
    await new Promise<void>((resolve) => l.server.close(() => resolve()));
  }

  async function doSync(): Promise<void> {
    const seen = new Set<string>();
    for (let offset = 0; ; offset += 1000) {
      const page = await ctx.registry.products.list({ limit: 1000, offset });
      for (const product of page.items) {
        let transport: TcpTransport | null;
        try {
          transport = tcpTransportOf(product, pluginFramingOf(plugins, product));
        } catch (err) {
          log.warn({ product: product.key, reason: (err as Error).message }, 'product TCP transport ignored');
          continue;
        }
        if (!transport) continue;
        seen.add(product.id);
        const signature = JSON.stringify(transport);
        const current = listeners.get(product.id);
        if (current && current.signature === signature) {
          current.product = product;
          continue;
        }
        if (current) {
          listeners.delete(product.id);
          await shut(current);
        }
        try {
          listeners.set(product.id, await open(product, transport, signature));
        } catch (err) {
          log.error({ product: product.key, reason: (err as Error).message }, 'TCP ingress could not listen');
        }
      }
      if (page.items.length < 1000) break;
    }
    for (const [id, l] of listeners) {
      if (!seen.has(id)) {
        listeners.delete(id);
        await shut(l);
        log.info({ product: l.product.key }, 'TCP ingress closed (product has no TCP port any more)');
      }
    }
  }

  const self: TcpIngress = {
    name: 'tcp_ingress',
    async start() {
      running = true;
      await self.sync();
      const every = opts.syncIntervalMs ?? 5000;
      if (every > 0) {
        timer = setInterval(() => {
          self.sync().catch((err) => log.error({ err }, 'TCP ingress sync failed'));
        }, every);
        timer.unref();
      }
    },
    async stop() {
      running = false;
      clearInterval(timer);
      timer = undefined;
      await syncing;
      const all = [...listeners.values()];
      listeners.clear();
      await Promise.all(all.map(shut));
    },
    sync() {
      if (!running) return Promise.resolve();
      // serialized: a call made during a sync still sees products created before it
      const next: Promise<void> = (syncing ?? Promise.resolve()).then(doSync).finally(() => {
        if (syncing === next) syncing = undefined;
      });
      syncing = next;
      return next;
    },
    portOf(productKey) {
      for (const l of listeners.values()) if (l.product.key === productKey) return l.port;
      return undefined;
    },
    isConnected: (deviceId) => byDevice.has(deviceId),
    heldDevices: () => byDevice.keys(),
    heldBy(deviceId) {
      const conn = byDevice.get(deviceId);
      if (!conn || conn.socket.destroyed) return [];
      return [{ stamp: conn.stamp, close: (reason) => {
        conn.closeReason = reason;
        close(conn, reason, 'revoked');
      } }];
    },
    write(deviceId, bytes, frame) {
      const conn = byDevice.get(deviceId);
      if (!conn || conn.socket.destroyed) return false;
      conn.socket.write(frame ? encodeFrame(conn.listener.transport.framing, bytes) : bytes);
      return true;
    },
    health(): ComponentHealth {
      return { ok: true, ports: Object.fromEntries([...listeners.values()].map((l) => [l.product.key, l.port])), connections: [...listeners.values()].reduce((n, l) => n + l.sockets.size, 0), devices: byDevice.size };
    },
  };
  return self;
}
