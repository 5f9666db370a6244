/**
 * The packet guard: how the broker reads device connections. It hooks the connection's own `read()`
 * (no stream in between: a wrapping Duplex cost ~1 KB per idle connection and a second pass through
 * the stream machinery for every read and write) and walks MQTT fixed headers as aedes reads:
 *
 * 1. a packet whose declared size exceeds the limit is refused before it is buffered;
 * 2. bytes that are not MQTT framing are refused;
 * 3. aedes gets at most `batchPackets` packets per read; the rest goes back to the front of the
 *    socket's buffer (`unshift`) for its next read.
 *
 * Why (3): aedes reads everything buffered on a socket and publishes all of it at once; with many
 * fast publishers mqemitter's queue collapses (docs/broker.md "Backpressure and the fan-in collapse"). aedes reads
 * again only when the packets it has are handled, so a small batch bounds what one connection has in
 * flight. While a socket stays unread its buffer fills to the high-water mark, Node stops reading
 * it and TCP pushes back on the device. The broker holds a publish's completion while the device bus
 * is behind, so the same mechanism is the bus backpressure (docs/broker.md).
 *
 * `coalesceWrites` makes the writes of one event-loop turn leave in one `writev` (aedes writes each
 * delivered packet with its own cork/uncork, i.e. one syscall per message to a busy subscriber).
 */
import { Readable, type Duplex } from 'node:stream';

/**
 * Bytes that connections may hold in CONNECT packets larger than SMALL_CONNECT_BYTES before they
 * are complete: shared by all the connections of a broker. A CONNECT may be as large as any packet
 * (a will carries a payload), and each unfinished one is held for up to the connect timeout:
 * without a total, 400 sockets each sending 250 KiB of a CONNECT held ~100 MB with no login at all
 * (18,000 would hold ~4.5 GB). Ordinary CONNECTs are small and never wait on it.
 */
export interface PreLoginBudget {
  held: number;
  readonly max: number;
}

/** CONNECTs up to this size (id, user, secret, a small will) need no share of the pre-login budget */
export const SMALL_CONNECT_BYTES = 2 * 1024;

export interface GuardOptions {
  maxPacketSize: number;
  /** what large unfinished CONNECTs may hold in all (see PreLoginBudget); unbounded without it */
  preLogin?: PreLoginBudget;
  /** packets handed to aedes per read (default 16) */
  batchPackets?: number;
  /** called once with the reason when the guard closes the connection */
  onViolation?: (conn: Duplex, reason: string) => void;
}

/** Header-walk state of one connection (a small plain object: it lives as long as the connection). */
class GuardState {
  need = 0; // body bytes still to skip of the current packet
  hdr = 0; // header bytes seen of the current packet (0: at a packet boundary)
  len = 0;
  mul = 1;
  violated = false;
  /** the first packet (the CONNECT) has not been seen whole yet */
  first = true;
  /** bytes of the pre-login budget this connection's unfinished CONNECT holds */
  reserved = 0;
  /** length of the remainder this guard put back at the front of the socket's buffer (0: none) */
  rest = 0;
  /** the caller's options object, shared by all its connections (not a copy per connection) */
  readonly opts: GuardOptions;
  constructor(opts: GuardOptions) {
    this.opts = opts;
  }
}

const kGuard = Symbol('flux.packetGuard');
type Guarded = Duplex & { [kGuard]: GuardState; read(n?: number): unknown };

/**
 * Walks `chunk` from the state; answers where aedes' read should end (a packet boundary after
 * `batch` packets, or the chunk's end), or -1 with `st.violated` set and the reason in `reason[0]`.
 */
function scan(st: GuardState, chunk: Buffer, reason: string[]): number {
  const maxPacketSize = st.opts.maxPacketSize;
  const batchPackets = Math.max(1, st.opts.batchPackets ?? 16);
  let packets = 0;
  let i = 0;
  const n = chunk.length;
  while (i < n) {
    if (st.need > 0) {
      const skip = Math.min(st.need, n - i);
      st.need -= skip;
      i += skip;
      if (st.need === 0 && st.reserved > 0) releasePreLogin(st);
      if (st.need === 0 && packets >= batchPackets) return i;
      continue;
    }
    const b = chunk[i]!;
    i++;
    if (st.hdr === 0) {
      // fixed header byte 1: packet type 1..15 (0 is reserved: not MQTT) [MQTT-2.2.1]
      if (b >> 4 === 0) {
        reason[0] = 'not MQTT: reserved packet type 0';
        return -1;
      }
      st.hdr = 1;
      st.len = 0;
      st.mul = 1;
      continue;
    }
    // remaining length: variable byte integer of at most 4 bytes [MQTT-2.2.3]
    st.len += (b & 0x7f) * st.mul;
    st.mul *= 128;
    st.hdr++;
    if (b & 0x80) {
      if (st.hdr > 4) {
        reason[0] = 'not MQTT: malformed remaining length';
        return -1;
      }
      continue;
    }
    if (st.len + st.hdr > maxPacketSize) {
      reason[0] = `packet of ${st.len + st.hdr} bytes exceeds the maximum packet size ${maxPacketSize}`;
      return -1;
    }
    if (st.first) {
      st.first = false;
      const budget = st.opts.preLogin;
      if (budget && st.len > SMALL_CONNECT_BYTES) {
        if (budget.held + st.len > budget.max) {
          reason[0] = `a first packet of ${st.len} bytes while unfinished large CONNECTs hold the pre-login budget (${budget.max} bytes)`;
          return -1;
        }
        budget.held += st.len;
        st.reserved = st.len;
      }
    }
    st.need = st.len;
    st.hdr = 0;
    packets++;
    if (st.need === 0 && packets >= batchPackets) return i;
  }
  return n;
}

const reasonBox: string[] = [''];

/** The `read()` of a guarded connection (one shared function; its state hangs off the connection). */
function guardedRead(this: Guarded, size?: number): unknown {
  const proto = Object.getPrototypeOf(this) as { read(n?: number): unknown };
  // read(0) is Node's own nudge to refill the buffer (maybeReadMore, emitReadable) and its result is
  // dropped: answered with the remainder below, those packets were lost (a QoS 1 burst of 200 from
  // one client lost 16, never acknowledged; test/broker "acknowledges every QoS 1 uplink of a burst").
  if (size === 0) return proto.read.call(this, 0);
  const st = this[kGuard];
  if (st.violated) return null;
  // A remainder put back by the last read is read alone, as the very chunk it is: read() without a
  // size would concatenate it with everything buffered behind it, a copy of up to the high-water
  // mark for every batch (measured: fan-in fell to 8k msg/s and 1.3 GB RSS).
  const rest = st.rest;
  st.rest = 0;
  const chunk = proto.read.call(this, rest > 0 ? rest : size);
  if (!Buffer.isBuffer(chunk)) return chunk;
  const end = scan(st, chunk, reasonBox);
  if (end < 0) {
    st.violated = true;
    const onViolation = st.opts.onViolation;
    if (onViolation) onViolation(this, reasonBox[0]!);
    this.destroy(new Error(reasonBox[0]));
    return null;
  }
  if (end === chunk.length) return chunk;
  // the rest waits at the front of the socket's buffer for aedes' next read
  st.rest = chunk.length - end;
  this.unshift(chunk.subarray(end));
  return chunk.subarray(0, end);
}

function releasePreLogin(st: GuardState): void {
  const budget = st.opts.preLogin;
  if (budget) budget.held -= st.reserved;
  st.reserved = 0;
}

/** Gives back what `conn`'s unfinished CONNECT held of the pre-login budget; call when it closes. */
export function releaseGuard(conn: Duplex): void {
  const st = (conn as Partial<Guarded>)[kGuard];
  if (st && st.reserved > 0) releasePreLogin(st);
}

/**
 * Guards `conn` in place (see the module comment). aedes then reads it as usual. `opts` is kept by
 * reference: pass one object for all connections of a listener (18k copies cost ~1 MB).
 */
export function guardConnection(conn: Duplex, opts: GuardOptions): void {
  const g = conn as Guarded;
  g[kGuard] = new GuardState(opts);
  g.read = guardedRead as Guarded['read'];
}

function uncorkAll(conn: Duplex): void {
  while (conn.writableCorked > 0) conn.uncork();
}

/** The `write()` of a coalescing connection: the first write of a turn corks it, the next turn sends all in one writev. */
function coalescingWrite(this: Duplex, chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
  if (this.writableCorked === 0 && !this.destroyed) {
    this.cork();
    setImmediate(uncorkAll, this);
  }
  const proto = Object.getPrototypeOf(this) as { write: (...args: unknown[]) => boolean };
  return proto.write.call(this, chunk, encoding, cb);
}

/** Writes `chunk` without starting a coalescing cork: at once, or behind what this turn already corked. */
export function writeNow(conn: Duplex, chunk: Buffer): boolean {
  if (conn.write !== coalescingWrite) return conn.write(chunk);
  const proto = Object.getPrototypeOf(conn) as { write: (chunk: Buffer) => boolean };
  return proto.write.call(conn, chunk);
}

/** Lets what is written to `conn` in one event-loop turn leave together (one writev instead of one per packet). */
export function coalesceWrites(conn: Duplex): void {
  (conn as Duplex & { write: unknown }).write = coalescingWrite;
}

/** Reads of plain Readables are not guarded twice (tests, diagnostics). */
export function isGuarded(conn: Readable): boolean {
  return kGuard in conn;
}
