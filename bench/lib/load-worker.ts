/**
 * An MQTT load generator that runs in its own process (forked by bench/lib/load.ts) so the load is
 * never hidden inside the measured process. Raw sockets + mqtt-packet (no per-client mqtt.js state),
 * Nagle off, one prebuilt PUBLISH per device. Paced (token bucket per 5 ms tick, round robin over
 * devices) or unthrottled (each socket written until it pushes back). Reports its own CPU time.
 *
 * Protocol (IPC): parent sends `{ cmd: 'connect', config }` → child answers `{ connected, failed }`;
 * `{ cmd: 'run', rate, seconds }` → `{ done: Report }`; `{ cmd: 'exit' }`.
 */
import net from 'node:net';
import mqttPacket from 'mqtt-packet';

export interface LoadDevice {
  username: string;
  password: string;
  topic: string;
  /** this device's own payload (hex), instead of the config's */
  payloadHex?: string;
}

export interface LoadConfig {
  host: string;
  port: number;
  devices: LoadDevice[];
  /** hex payload published by every device */
  payloadHex: string;
  qos: 0 | 1;
  /** source address for this worker's sockets (spreads ephemeral ports over 127.0.0.x) */
  localAddress?: string;
  /** connect only; do not publish (idle-connection benchmark) */
  idle?: boolean;
  /** QoS1 in-flight window per device when unthrottled */
  window?: number;
  /** connect this many sockets at once */
  connectConcurrency?: number;
  /** write the send time (ms, float64 BE, performance.timeOrigin-based wall clock) into the first 8 payload bytes */
  stamp?: boolean;
}

export interface LoadReport {
  sent: number;
  acked: number;
  errors: number;
  /** PUBACK round trips (QoS1), ms */
  ackP50: number;
  ackP99: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  seconds: number;
}

interface Conn {
  sock: net.Socket;
  packet: Buffer;
  /** offset of the payload inside `packet` */
  payloadAt: number;
  /** offset of the 2-byte message id inside `packet` (QoS1) */
  idAt: number;
  nextId: number;
  inflight: Map<number, number>;
  blocked: boolean;
}

const conns: Conn[] = [];
let acked = 0;
let errors = 0;
let sent = 0;
const ackSamples: number[] = [];
const MAX_SAMPLES = 200_000;

function buildPublish(topic: string, payload: Buffer, qos: 0 | 1): { packet: Buffer; idAt: number } {
  const packet = mqttPacket.generate({ cmd: 'publish', topic, payload, qos, retain: false, dup: false, messageId: qos ? 1 : undefined } as mqttPacket.IPublishPacket);
  // fixed header (1 + remaining-length bytes) + 2-byte topic length + topic, then the message id
  let rl = 1;
  while (packet[rl]! & 0x80) rl++;
  return { packet, idAt: 1 + rl + 2 + Buffer.byteLength(topic) };
}

function connect(cfg: LoadConfig, d: LoadDevice, i: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: cfg.host, port: cfg.port, localAddress: cfg.localAddress, noDelay: true });
    const payload = Buffer.from(d.payloadHex ?? cfg.payloadHex, 'hex');
    const { packet, idAt } = buildPublish(d.topic, payload, cfg.qos);
    const conn: Conn = { sock, packet, payloadAt: packet.length - payload.length, idAt, nextId: 1, inflight: new Map(), blocked: false };
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    let ready = false;
    parser.on('packet', (p) => {
      if (p.cmd === 'connack') {
        if ((p as mqttPacket.IConnackPacket).returnCode === 0) {
          ready = true;
          resolve(conn);
        } else reject(new Error(`CONNACK ${(p as mqttPacket.IConnackPacket).returnCode} for ${d.username}`));
      } else if (p.cmd === 'puback') {
        const t0 = conn.inflight.get(p.messageId!);
        if (t0 !== undefined) {
          conn.inflight.delete(p.messageId!);
          acked++;
          if (ackSamples.length < MAX_SAMPLES) ackSamples.push(performance.now() - t0);
        }
      }
    });
    parser.on('error', () => errors++);
    sock.on('data', (b) => parser.parse(b));
    sock.on('drain', () => (conn.blocked = false));
    sock.on('error', (err) => {
      errors++;
      if (!ready) reject(err);
    });
    sock.on('close', () => {
      if (!ready) reject(new Error('closed before CONNACK'));
    });
    sock.write(
      mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: `${d.username}/${process.pid}-${i}`, clean: true, keepalive: 0, username: d.username, password: Buffer.from(d.password) }),
    );
  });
}

let stamp = false;

function publishOne(c: Conn, qos: 0 | 1): boolean {
  if (stamp) c.packet.writeDoubleBE(performance.timeOrigin + performance.now(), c.payloadAt);
  if (qos === 1) {
    const id = c.nextId;
    c.nextId = id === 65535 ? 1 : id + 1;
    c.packet.writeUInt16BE(id, c.idAt);
    c.inflight.set(id, performance.now());
    // the packet buffer is reused, so hand the socket a copy
    sent++;
    return c.sock.write(Buffer.from(c.packet));
  }
  sent++;
  return c.sock.write(stamp ? Buffer.from(c.packet) : c.packet);
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function run(cfg: LoadConfig, rate: number, seconds: number): Promise<LoadReport> {
  sent = 0;
  acked = 0;
  ackSamples.length = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const window = cfg.window ?? 32;
  await new Promise<void>((resolve) => {
    if (rate > 0) {
      let rr = 0;
      const tick = setInterval(() => {
        const now = performance.now();
        if (now >= end) {
          clearInterval(tick);
          return resolve();
        }
        let quota = Math.floor(((now - t0) / 1000) * rate) - sent;
        let skipped = 0;
        while (quota > 0 && skipped < conns.length) {
          const c = conns[rr++ % conns.length]!;
          if (c.blocked || (cfg.qos === 1 && c.inflight.size >= window)) {
            skipped++;
            continue;
          }
          skipped = 0;
          if (!publishOne(c, cfg.qos)) c.blocked = true;
          quota--;
        }
      }, 5);
    } else {
      // Unthrottled: every socket is written until it pushes back (or its QoS1 window is full).
      const pump = () => {
        if (performance.now() >= end) return resolve();
        for (const c of conns) {
          let n = 0;
          while (!c.blocked && n++ < 64 && (cfg.qos === 0 || c.inflight.size < window)) {
            if (!publishOne(c, cfg.qos)) c.blocked = true;
          }
        }
        setImmediate(pump);
      };
      pump();
    }
  });
  // Wait (bounded) for the last PUBACKs.
  if (cfg.qos === 1) {
    const until = performance.now() + 5000;
    while (acked < sent && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
  }
  const cpu = process.cpuUsage(cpu0);
  const sorted = ackSamples.slice().sort((a, b) => a - b);
  return {
    sent,
    acked,
    errors,
    ackP50: quantile(sorted, 0.5),
    ackP99: quantile(sorted, 0.99),
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    seconds: (performance.now() - t0) / 1000,
  };
}

let config: LoadConfig | undefined;
process.on('message', async (m: { cmd: string; config?: LoadConfig; rate?: number; seconds?: number }) => {
  try {
    if (m.cmd === 'connect') {
      config = m.config!;
      stamp = Boolean(config.stamp);
      let failed = 0;
      const concurrency = config.connectConcurrency ?? 200;
      for (let i = 0; i < config.devices.length; i += concurrency) {
        const batch = config.devices.slice(i, i + concurrency);
        const results = await Promise.allSettled(batch.map((d, j) => connect(config!, d, i + j)));
        for (const r of results) {
          if (r.status === 'fulfilled') conns.push(r.value);
          else failed++;
        }
      }
      process.send!({ connected: conns.length, failed, rss: process.memoryUsage().rss });
    } else if (m.cmd === 'run') {
      process.send!({ done: await run(config!, m.rate ?? 0, m.seconds ?? 5) });
    } else if (m.cmd === 'exit') {
      for (const c of conns) c.sock.destroy();
      process.exit(0);
    }
  } catch (err) {
    process.send!({ error: (err as Error).message });
  }
});
process.on('disconnect', () => process.exit(0));
