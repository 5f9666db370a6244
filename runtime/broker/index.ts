/**
 * @module broker — the embedded MQTT broker (aedes) on FLUX_MQTT_PORT, MQTT over WebSocket at `/mqtt`
 * on the HTTP port, and MQTTS on FLUX_MQTTS_PORT when FLUX_TLS_CERT/FLUX_TLS_KEY are set.
 *
 * Devices authenticate with username = device id, password = device secret; platform clients with
 * any non-device username and the admin token (docs/broker.md "MQTT"). Devices publish
 * only under their own prefix and subscribe only to their command topic. Uplinks go onto the device
 * bus; a bus that is behind stops the broker reading device sockets (see guard.ts, docs/broker.md).
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { Aedes, type AedesOptions, type Client, type PublishPacket, type Subscription } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { ConfigError } from '../errors/index.ts';
import { listen } from '../listen/index.ts';
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import type { DeviceIdentity } from '../registry/index.ts';
import type { ConnectionHolder, Presence } from '../ingress/index.ts';
import { counter, gauge, tallyCounter } from '../metrics/index.ts';
import { boundQos2Receive, patchAedesConnection, patchMqttPacketWrites, trimAfterConnect, type Qos2Receive } from '../patches/index.ts';
import { coalesceWrites, guardConnection, releaseGuard, writeNow } from './guard.ts';
import { uplinkHooks } from './uplinks.ts';
import { startAedes, type SharedBrokerState } from './shared-state.ts';
import { commandTopic, filterMatches, mayPublish, maySubscribe } from './topics.ts';
import { MAX_CLIENT_ID_LENGTH, deviceNamedBy } from './sessions.ts';
import { heldConnection } from './revoke.ts';
import { retainedQuota } from './retained.ts';
import { ConnState, connectAuthenticator, kConn, stateOf, type BrokerConn } from './authenticate.ts';

export { commandTopic, devicePrefix, filterMatches, mayPublish, maySubscribe, uplinkKind } from './topics.ts';
export { guardConnection, coalesceWrites } from './guard.ts';
export { MAX_CLIENT_ID_LENGTH, deviceSessionRefusal } from './sessions.ts';
export type { SharedBrokerState } from './shared-state.ts';

export interface BrokerOptions {
  /** the HTTP server to serve MQTT over WebSocket on (path `wsPath`) */
  httpServer?: http.Server;
  /** default `/mqtt` */
  wsPath?: string;
  /** largest MQTT packet accepted, bytes (default 256 KiB); larger closes the connection */
  maxPacketSize?: number;
  /** connections (all listeners together); beyond it CONNACK 3 "server unavailable" (default 18,000) */
  maxConnections?: number;
  /** ms a new connection has to send CONNECT (default 10 s) */
  connectTimeoutMs?: number;
  /** packets handed to aedes per socket read (default 16; see guard.ts) */
  batchPackets?: number;
  /** bytes large unfinished CONNECTs may hold in all, before login (default 16 MiB; guard.ts PreLoginBudget) */
  preLoginBytes?: number;
  /**
   * mqemitter concurrency (default 0 = no queue): the guard already bounds what is in flight, and
   * mqemitter's queue is what collapses under fan-in and overflows the stack when it drains (docs/broker.md)
   */
  concurrency?: number;
  /** cluster mode (runtime/cluster): sessions, subscriptions, retained messages, offline queues and delivery shared with the other nodes */
  shared?: SharedBrokerState;
}

export type CommandDelivery = { status: 'delivered' | 'queued'; topic: string; transport: 'mqtt' } | { status: 'offline'; topic: string; transport: 'mqtt'; reason: string };

/** `heldBy`: the device's live connections, for closing them when its access is revoked (runtime/ingress/revocation.ts) */
export interface Broker extends FluxModule, ConnectionHolder {
  readonly aedes: Aedes;
  /** the port actually listened on (FLUX_MQTT_PORT=0 picks one) */
  port(): number;
  /** the MQTTS port, or 0 when TLS is not configured */
  tlsPort(): number;
  /** open MQTT connections (TCP, TLS and WebSocket) */
  connections(): number;
  /**
   * Publishes a command to the device's command topic (QoS 1) and says whether it reached a live
   * session, a persistent one, or none. With `childId` the device is a gateway and the command is its
   * child's: it goes to `/{productKey}/{gatewayId}/command/{childId}`.
   */
  sendCommand(identity: DeviceIdentity, payload: Buffer, childId?: string): Promise<CommandDelivery>;
  /** whether the device holds a live MQTT connection */
  isConnected(deviceId: string): boolean;
}

/** subscriptions a device's connection may hold, and the longest filter it may subscribe to */
export const MAX_DEVICE_SUBSCRIPTIONS = 32;
export const MAX_DEVICE_FILTER_LENGTH = 256;

/** QoS 2 PUBLISHes of one client awaiting their PUBREL (each is kept, without its payload, until then) */
export const MAX_QOS2_AWAITING = 1024;

// One per process: the exports object it patches is shared by every broker (runtime/patches).
const fastAcks = patchMqttPacketWrites(writeNow);

function readPem(variable: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ConfigError(variable, `${variable}=${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** The broker needs the presence tracker it shares with the other device transports. */
export function createBroker(ctx: FluxContext, presence: Presence, opts: BrokerOptions = {}): Broker {
  const log = ctx.log.child({ module: 'broker' });
  const maxPacketSize = opts.maxPacketSize ?? 256 * 1024;
  const maxConnections = opts.maxConnections ?? 18_000;
  const wsPath = opts.wsPath ?? '/mqtt';
  /** live clients per device id: the client, or a Set while it connects twice (until the takeover closes the old one) */
  const liveByDevice = new Map<string, Client | Set<Client>>();
  /** client id → device id of persistent (clean=false) device sessions, to tell `queued` from `offline` */
  const sessionOwner = new Map<string, string>();
  /** open connections (every listener), guarded in place (guard.ts) */
  const conns = new Set<Duplex>();
  /** one options object for every connection's guard */
  const guardOptions = { maxPacketSize, batchPackets: opts.batchPackets, onViolation, preLogin: { held: 0, max: opts.preLoginBytes ?? 16 * 1024 * 1024 } };
  let aedes: Aedes | undefined;
  /** closes what the shared state opened for aedes (cluster mode) */
  let release: (() => Promise<void>) | undefined;
  let server: net.Server | undefined;
  let tlsServer: tls.Server | undefined;
  let wss: WebSocketServer | undefined;
  let onUpgrade: ((req: http.IncomingMessage, socket: Duplex, head: Buffer) => void) | undefined;
  let listeningPort = 0;
  let listeningTlsPort = 0;
  let refusedOverCap = 0;
  let warnedUnpatched = false;
  /** QoS 2 packet ids awaiting their PUBREL, per client id (runtime/patches/aedes-qos2-receive.ts) */
  let qos2: Qos2Receive | undefined;
  const metrics = {
    refused: counter(ctx.metrics, 'flux_mqtt_refused_total', 'MQTT connections, publishes and subscriptions refused, by reason', ['reason']),
    uplinks: tallyCounter(ctx.metrics, 'flux_mqtt_uplinks_total', 'device uplinks routed onto the bus from MQTT').tally(),
    paused: counter(ctx.metrics, 'flux_mqtt_backpressure_waits_total', 'times a device publish waited for the device bus to drain'),
    connections: gauge(ctx.metrics, 'flux_mqtt_connections', 'open MQTT connections (TCP, TLS, WebSocket)'),
  };

  function accept(conn: Duplex, req: http.IncomingMessage | undefined, remote: string | undefined): void {
    if (!aedes || aedes.closed) {
      conn.destroy();
      return;
    }
    // hard cap far past the CONNACK refusal, for sockets that never get to CONNECT
    if (conns.size >= maxConnections + 256) {
      if (refusedOverCap++ % 1000 === 0) log.warn({ remote, open: conns.size, maxConnections }, 'connection dropped: over the connection limit');
      metrics.refused.inc({ reason: 'connection_limit' });
      conn.destroy();
      return;
    }
    guardConnection(conn, guardOptions);
    coalesceWrites(conn);
    (conn as BrokerConn)[kConn] = new ConnState();
    conns.add(conn);
    metrics.connections.set(conns.size);
    // (no 'error' listener of ours: aedes.handle() adds one at once and keeps one until the end)
    conn.on('close', onConnClose);
    const client = aedes.handle(conn as never, req as never);
    // reads gated to one batch in flight, and a lighter parser buffer (runtime/patches/aedes-client.ts)
    if (!patchAedesConnection(client, conn) && !warnedUnpatched) {
      warnedUnpatched = true;
      log.warn('aedes no longer has the shape runtime/patches/aedes-client.ts patches: connections are read unpatched (more memory under fan-in)');
    }
  }

  function onViolation(conn: Duplex, reason: string): void {
    metrics.refused.inc({ reason: 'malformed_or_too_large' });
    log.warn({ remote: (conn as net.Socket).remoteAddress, reason }, 'MQTT connection closed');
  }

  function onConnClose(this: BrokerConn): void {
    if (!conns.delete(this)) return;
    releaseGuard(this);
    metrics.connections.set(conns.size);
    const st = this[kConn];
    if (!st?.release || !st.client || typeof st.identity !== 'object') return;
    const id = st.identity.device.id;
    const live = liveByDevice.get(id);
    if (live === st.client) liveByDevice.delete(id);
    else if (live instanceof Set) {
      live.delete(st.client);
      if (live.size === 1) liveByDevice.set(id, live.values().next().value!);
    }
    const release = st.release;
    st.release = undefined;
    release(st.closeReason ?? 'disconnected');
  }

  function liveClients(deviceId: string): Client[] {
    const live = liveByDevice.get(deviceId);
    return live === undefined ? [] : live instanceof Set ? [...live] : [live];
  }

  /**
   * Why a device's connection may not add `filter`, or undefined. Each filter is kept for the session
   * (in memory; for a persistent one after the connection too): unbounded, one device could grow the
   * heap with tens of thousands of filters per session. A SUBSCRIBE's filters are all authorised in
   * one turn before aedes adds them, hence the filters of this turn in `subscribing`.
   */
  function subscriptionLimit(client: Client, filter: string): string | undefined {
    if (filter.length > MAX_DEVICE_FILTER_LENGTH) return `filter of ${filter.length} characters (at most ${MAX_DEVICE_FILTER_LENGTH})`;
    const held = (client as Client & { subscriptions: Record<string, unknown> }).subscriptions;
    const st = stateOf(client);
    if (!st || filter in held) return undefined;
    let n = Object.keys(held).length;
    if (st.subscribing) for (const f of st.subscribing) if (!(f in held)) n++;
    if (n >= MAX_DEVICE_SUBSCRIPTIONS) return `a device connection holds at most ${MAX_DEVICE_SUBSCRIPTIONS} subscriptions`;
    if (!st.subscribing) {
      const adding = (st.subscribing = new Set());
      queueMicrotask(() => {
        if (st.subscribing === adding) st.subscribing = undefined;
      });
    }
    st.subscribing.add(filter);
    return undefined;
  }

  function deviceOf(client: Client): DeviceIdentity | undefined {
    const id = stateOf(client)?.identity;
    return id && id !== 'platform' ? id : undefined;
  }

  const { journalled, published } = uplinkHooks(ctx.journal, metrics);
  const retained = retainedQuota();

  const self: Broker = {
    name: 'broker',
    get aedes() {
      if (!aedes) throw new Error('broker not started');
      return aedes;
    },
    port: () => listeningPort,
    tlsPort: () => listeningTlsPort,
    connections: () => conns.size,
    async start() {
      if (!fastAcks) log.warn('mqtt-packet no longer has the shape runtime/patches/mqtt-packet-writes.ts patches: PUBACKs are written unpatched');
      const options: AedesOptions & { maximumPacketSize?: number; sessionExpiryIntervalLimit?: number; pendingSessionsLimit?: number; topicAliasMaximum?: number } = {
        connectTimeout: opts.connectTimeoutMs ?? 10_000,
        concurrency: opts.concurrency ?? 0,
        maxClientsIdLength: MAX_CLIENT_ID_LENGTH, // aedes checks it for MQTT 3.1 only; authenticate() for all
        // MQTT 5 (aedes 2): advertised and enforced before buffering; bounded sessions
        maximumPacketSize: maxPacketSize,
        sessionExpiryIntervalLimit: 7 * 24 * 3600,
        // MQTT 5 topic aliases: a device may send its long topic once and then a 1–16 alias (bytes
        // matter on metered links); each connection's map holds at most 16 topics.
        topicAliasMaximum: 16,
        pendingSessionsLimit: maxConnections,
        authenticate: connectAuthenticator({ registry: ctx.registry, adminToken: ctx.adminToken, log, refused: metrics.refused, shared: opts.shared, open: () => conns.size, maxConnections }),
        authorizePublish(client, packet, done) {
          if (packet.topic.startsWith('$SYS')) return done(new Error('$SYS topics are reserved'));
          if (client && packet.qos === 2 && qos2 && !qos2.awaits(client.id, packet.messageId!) && qos2.awaiting(client.id) >= MAX_QOS2_AWAITING) {
            // each one is kept until its PUBREL: a client that never sends it must not grow the broker
            log.warn({ clientId: client.id, awaiting: qos2.awaiting(client.id) }, 'MQTT publish refused: too many QoS 2 messages await their PUBREL');
            metrics.refused.inc({ reason: 'qos2_awaiting' });
            return done(new Error(`more than ${MAX_QOS2_AWAITING} QoS 2 messages await their PUBREL`));
          }
          const identity = client ? deviceOf(client) : undefined;
          if (!client || !identity) return done(null); // platform clients and the broker itself
          if (!mayPublish(identity.product.key, identity.device.id, packet.topic)) {
            log.warn({ deviceId: identity.device.id, topic: packet.topic }, 'MQTT publish refused: outside the device topic prefix');
            metrics.refused.inc({ reason: 'acl_publish' });
            // MQTT 3.1.1 has no PUBACK reason code: the server closes the connection [MQTT-3.3.5-2]
            return done(new Error(`publish to ${packet.topic} not allowed`));
          }
          const overQuota = packet.retain ? retained.admit(identity.device.id, packet.topic, packet.payload.length) : undefined;
          if (overQuota) {
            log.warn({ deviceId: identity.device.id, topic: packet.topic, reason: overQuota }, 'MQTT publish refused: retained message over the device quota');
            metrics.refused.inc({ reason: 'retained_quota' });
            return done(new Error(`retained message refused: ${overQuota}`));
          }
          // a QoS 2 PUBLISH sent again before its PUBREL: logged the first time, aedes answers it from its store
          if (packet.qos === 2 && qos2?.awaits(client.id, packet.messageId!)) return done(null);
          journalled(identity, packet, done);
        },
        authorizeSubscribe(client, sub: Subscription, done) {
          if (sub.topic.startsWith('$SYS')) {
            // broker internals (client ids, addresses, load) are for nobody, platform clients included
            log.warn({ clientId: client.id, filter: sub.topic }, 'MQTT subscribe refused: $SYS topics are not served');
            metrics.refused.inc({ reason: 'acl_subscribe' });
            return done(null, null as never);
          }
          const identity = deviceOf(client);
          if (!identity) return done(null, sub);
          if (!maySubscribe(identity.product.key, identity.device.id, sub.topic)) {
            log.warn({ deviceId: identity.device.id, filter: sub.topic }, 'MQTT subscribe refused: devices subscribe only to their command topic');
            metrics.refused.inc({ reason: 'acl_subscribe' });
            return done(null, null as never); // SUBACK 0x80 for this filter; the connection stays [MQTT-3.9.3]
          }
          const overLimit = subscriptionLimit(client, sub.topic);
          if (!overLimit) return done(null, sub);
          log.warn({ deviceId: identity.device.id, filter: sub.topic.slice(0, 300), reason: overLimit }, 'MQTT subscribe refused: subscription limit');
          metrics.refused.inc({ reason: 'subscription_limit' });
          done(null, null as never);
        },
        published: published as AedesOptions['published'],
      };
      const started = await startAedes(options, opts.shared, log);
      aedes = started.aedes;
      release = started.release;
      qos2 = boundQos2Receive(aedes);
      if (!qos2) log.warn('aedes no longer has the shape runtime/patches/aedes-qos2-receive.ts patches: QoS 2 messages awaiting their PUBREL are not bounded');
      const a = aedes;
      a.on('client', (client: Client) => {
        trimAfterConnect(client);
        const st = stateOf(client);
        const identity = deviceOf(client);
        if (!st || !identity || (client.conn as Duplex).destroyed || !conns.has(client.conn as Duplex)) return;
        const id = identity.device.id;
        const live = liveByDevice.get(id);
        if (live === undefined) liveByDevice.set(id, client);
        else if (live instanceof Set) live.add(client);
        else liveByDevice.set(id, new Set([live, client]));
        if (client.clean === false) sessionOwner.set(client.id, id);
        else sessionOwner.delete(client.id);
        if (sessionOwner.size > maxConnections * 4) sessionOwner.delete(sessionOwner.keys().next().value as string);
        st.client = client;
        st.release = presence.connected(identity, 'mqtt');
      });
      a.on('keepaliveTimeout', (client: Client) => {
        const st = stateOf(client);
        if (st) st.closeReason = 'keepalive timeout';
      });
      a.on('clientError', (client: Client, err: Error) => {
        const st = stateOf(client);
        if (st && st.closeReason === undefined) st.closeReason = err.message;
        log.debug({ clientId: client.id, err: err.message }, 'MQTT client error');
      });
      a.on('connectionError', (_client: Client, err: Error) => log.debug({ err: err.message }, 'MQTT connection error before CONNECT'));

      server = net.createServer({ noDelay: true }, (socket) => accept(socket, undefined, socket.remoteAddress));
      listeningPort = await listen(server, ctx.settings.mqttPort, ctx.settings.host, 'FLUX_MQTT_PORT', 'MQTT');

      if (ctx.settings.tlsCert && ctx.settings.tlsKey) {
        tlsServer = tls.createServer({ cert: readPem('FLUX_TLS_CERT', ctx.settings.tlsCert), key: readPem('FLUX_TLS_KEY', ctx.settings.tlsKey), handshakeTimeout: 10_000 }, (socket) =>
          accept(socket, undefined, socket.remoteAddress),
        );
        tlsServer.on('tlsClientError', (err) => log.debug({ err: err.message }, 'MQTTS handshake failed'));
        listeningTlsPort = await listen(tlsServer, ctx.settings.mqttsPort, ctx.settings.host, 'FLUX_MQTTS_PORT', 'MQTTS');
        log.info({ port: listeningTlsPort }, 'MQTTS listening');
      }

      if (opts.httpServer) {
        wss = new WebSocketServer({ noServer: true, maxPayload: maxPacketSize + 8, perMessageDeflate: false, clientTracking: false });
        onUpgrade = (req, socket, head) => {
          const path = (req.url ?? '').split('?')[0];
          if (path !== wsPath) return; // other paths (Node-RED's comms) belong to other listeners
          wss!.handleUpgrade(req, socket, head, (ws) => {
            const stream = createWebSocketStream(ws);
            accept(stream, req, req.socket.remoteAddress);
          });
        };
        opts.httpServer.on('upgrade', onUpgrade);
      }
    },
    async stop() {
      const s = server;
      const t = tlsServer;
      const a = aedes;
      server = undefined;
      tlsServer = undefined;
      aedes = undefined;
      if (onUpgrade) opts.httpServer?.off('upgrade', onUpgrade);
      onUpgrade = undefined;
      wss?.close();
      wss = undefined;
      for (const c of conns) c.destroy();
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
      if (t) await new Promise<void>((resolve) => t.close(() => resolve()));
      if (a) await new Promise<void>((resolve) => a.close(() => resolve()));
      const r = release;
      release = undefined;
      if (r) await r();
    },
    health(): ComponentHealth {
      return { ok: Boolean(server?.listening), port: listeningPort, tls_port: listeningTlsPort || undefined, connections: conns.size, clients: aedes?.connectedClients ?? 0, online_devices: presence.onlineCount() };
    },
    isConnected: (deviceId) => liveByDevice.has(deviceId),
    heldBy: (deviceId) => liveClients(deviceId).map((client) => heldConnection(client, stateOf(client), log)),
    heldDevices: () => liveByDevice.keys(),
    async sendCommand(identity, payload, childId) {
      const a = self.aedes;
      const topic = childId === undefined ? commandTopic(identity.product.key, identity.device.id) : `${commandTopic(identity.product.key, identity.device.id)}/${childId}`;
      const live = liveClients(identity.device.id);
      const subscribedLive = live.some((c) => Object.keys((c as Client & { subscriptions: Record<string, unknown> }).subscriptions).some((f) => filterMatches(f, topic)));
      let queued = false;
      if (!subscribedLive) {
        const persistence = (a as Aedes & { persistence: { subscriptionsByTopic(t: string): Promise<{ clientId: string }[]> } }).persistence;
        const subs = await persistence.subscriptionsByTopic(topic);
        // in a cluster the session may have been made on another node: its client id names the device (sessions.ts)
        const owns = (clientId: string) => sessionOwner.get(clientId) === identity.device.id || (opts.shared !== undefined && deviceNamedBy(clientId) === identity.device.id);
        queued = subs.some((s) => owns(s.clientId) && !live.some((c) => c.id === s.clientId));
      }
      if (!subscribedLive && !queued) {
        return { status: 'offline', topic, transport: 'mqtt', reason: live.length ? 'the device is connected but not subscribed to its command topic' : 'the device has no MQTT connection and no persistent session' };
      }
      const packet = { cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false } as PublishPacket;
      await new Promise<void>((resolve, reject) => a.publish(packet, (err?: Error) => (err ? reject(err) : resolve())));
      return { status: subscribedLive ? 'delivered' : 'queued', topic, transport: 'mqtt' };
    },
  };
  return self;
}
