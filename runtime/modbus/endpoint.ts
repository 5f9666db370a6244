/**
 * One connection to a Modbus endpoint (host, port, mode), shared by every unit behind it.
 *
 * Modbus TCP: requests are pipelined (up to `maxInFlight`, matched by transaction id); a unit that
 * does not answer only holds its own slots until its timeout. RTU-over-TCP: one request at a time,
 * as on the serial bus behind the converter, in arrival order. Requests wait in a bounded queue; a
 * request's timeout runs from when it goes on the wire (so a slow unit ahead of it on a serial bus
 * does not fail it), and waiting in the queue is bounded separately. The socket connects on demand and
 * after a failure waits a growing backoff (0.5 s doubling to 30 s) before the next attempt; while it
 * waits, requests fail at once with the reason of the last failure.
 */
import net from 'node:net';
import { MAX_PDU, ModbusError, MbapReader, RtuReader, checkResponse, mbapFrame, rtuFrame, type FailureReason } from './frame.ts';

export type ModbusMode = 'tcp' | 'rtu-over-tcp';

export interface EndpointAddress {
  host: string;
  port: number;
  mode: ModbusMode;
}

export interface EndpointOptions extends EndpointAddress {
  /** Modbus TCP requests in flight at once (RTU-over-TCP: always 1); default 16 */
  maxInFlight?: number;
  /** requests waiting for a slot; more fail with `queue_full`; default 10,000 */
  maxQueued?: number;
  connectTimeoutMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** called once per finished request (for counters); `ms` from send to answer */
  onResult?(ok: boolean, ms: number, reason?: FailureReason): void;
  /** connection changes, for logs */
  onConnection?(state: 'connected' | 'closed' | 'failed', detail?: string): void;
}

/** Requests asked together (one poll): once one of them times out, the rest are not sent. */
export interface RequestGroup {
  failed?: ModbusError;
}

interface Pending {
  group: RequestGroup | undefined;
  unit: number;
  pdu: Buffer;
  timeoutMs: number;
  timer: NodeJS.Timeout | undefined;
  sentAt: number;
  tid: number;
  resolve(data: Buffer): void;
  reject(err: ModbusError): void;
}

export interface EndpointStats {
  requests: number;
  errors: number;
  timeouts: number;
  in_flight: number;
  queued: number;
  connected: boolean;
  connects: number;
  last_error: string | null;
}

export interface Endpoint {
  readonly key: string;
  readonly address: EndpointAddress;
  /** Sends `pdu` to `unit`; resolves with the checked response (read data, or the write echo). */
  request(unit: number, pdu: Buffer, timeoutMs: number, group?: RequestGroup): Promise<Buffer>;
  stats(): EndpointStats;
  close(): void;
}

/** how long a request may wait for its turn (on top of its own timeout) before it fails */
const MAX_QUEUE_WAIT_MS = 10_000;
/** the most bytes one answer takes on the wire: MBAP header (7) + PDU; an RTU frame (unit + PDU + CRC) is shorter */
const MAX_ANSWER_BYTES = 7 + MAX_PDU;

export function endpointKey(a: EndpointAddress): string {
  return `${a.mode === 'tcp' ? 'tcp' : 'rtu'}://${a.host}:${a.port}`;
}

export function createEndpoint(opts: EndpointOptions): Endpoint {
  const address: EndpointAddress = { host: opts.host, port: opts.port, mode: opts.mode };
  const rtu = opts.mode === 'rtu-over-tcp';
  const maxInFlight = rtu ? 1 : Math.max(1, opts.maxInFlight ?? 16);
  const maxQueued = opts.maxQueued ?? 10_000;
  const backoffMin = opts.backoffMinMs ?? 500;
  const backoffMax = opts.backoffMaxMs ?? 30_000;
  const connectTimeout = opts.connectTimeoutMs ?? 5000;

  let socket: net.Socket | undefined;
  let connected = false;
  let closed = false;
  let backoff = backoffMin;
  let retryAt = 0;
  let lastFailure = '';
  let nextTid = 1;
  // Bytes the slave may still send on this connection: one largest answer per request written on it
  // (late answers included), at most as many as 64 answers beyond the in-flight ones. A slave sending
  // more answers nobody: reading that flood took the event loop from the other endpoints' polls (and a
  // core), so the connection is dropped instead.
  let allowance = 0;
  const maxAllowance = MAX_ANSWER_BYTES * (maxInFlight + 64);
  const inFlight = new Map<number, Pending>();
  const queue: Pending[] = [];
  const mbap = new MbapReader();
  const rtuReader = new RtuReader();
  const stats = { requests: 0, errors: 0, timeouts: 0, connects: 0, last_error: null as string | null };

  function finish(p: Pending, err: ModbusError | undefined, data?: Buffer): void {
    if (p.timer) clearTimeout(p.timer);
    p.timer = undefined;
    stats.requests++;
    const ms = p.sentAt ? performance.now() - p.sentAt : 0;
    if (err) {
      stats.errors++;
      if (err.reason === 'timeout') stats.timeouts++;
      stats.last_error = err.message;
      opts.onResult?.(false, ms, err.reason);
      p.reject(err);
    } else {
      opts.onResult?.(true, ms);
      p.resolve(data!);
    }
  }

  function failAll(reason: FailureReason, message: string): void {
    for (const p of inFlight.values()) finish(p, new ModbusError(reason, message));
    inFlight.clear();
    for (const p of queue.splice(0)) finish(p, new ModbusError(reason, message));
  }

  function onTimeout(p: Pending): void {
    p.timer = undefined;
    const i = queue.indexOf(p);
    if (i >= 0) queue.splice(i, 1);
    else if (inFlight.get(p.tid) === p) {
      inFlight.delete(p.tid);
      // the answer may still come: on RTU it would be taken for the next request's, so drop what is buffered
      if (rtu) rtuReader.clear();
    }
    const err = new ModbusError('timeout', p.sentAt ? `unit ${p.unit} did not answer within ${p.timeoutMs} ms` : `a request to unit ${p.unit} waited more than ${p.timeoutMs + MAX_QUEUE_WAIT_MS} ms for its turn`);
    if (p.group) p.group.failed ??= err;
    finish(p, err);
    pump();
  }

  let corked: net.Socket | undefined;
  const uncork = () => {
    corked?.uncork();
    corked = undefined;
  };

  function pump(): void {
    if (!connected || !socket) return;
    // requests of one event-loop turn (units polled at the same moment) go out in one write
    if (!corked) {
      corked = socket;
      socket.cork();
      setImmediate(uncork);
    }
    while (inFlight.size < maxInFlight && queue.length) {
      const p = queue.shift()!;
      if (p.group?.failed) {
        finish(p, p.group.failed);
        continue;
      }
      clearTimeout(p.timer);
      p.timer = setTimeout(onTimeout, p.timeoutMs, p);
      if (rtu) {
        p.tid = 0;
        inFlight.set(0, p);
        p.sentAt = performance.now();
        allowance = Math.min(allowance + MAX_ANSWER_BYTES, maxAllowance);
        socket.write(rtuFrame(p.unit, p.pdu));
      } else {
        let tid = nextTid;
        while (inFlight.has(tid)) tid = (tid + 1) & 0xffff || 1;
        nextTid = (tid + 1) & 0xffff || 1;
        p.tid = tid;
        inFlight.set(tid, p);
        p.sentAt = performance.now();
        allowance = Math.min(allowance + MAX_ANSWER_BYTES, maxAllowance);
        socket.write(mbapFrame(tid, p.unit, p.pdu));
      }
    }
  }

  function onFrame(tid: number, unit: number, pdu: Buffer): void {
    const p = inFlight.get(tid);
    if (!p || p.unit !== unit) return; // an answer after its timeout, or to nobody: dropped
    inFlight.delete(tid);
    let data: Buffer;
    try {
      data = checkResponse(p.pdu, pdu);
    } catch (err) {
      finish(p, err as ModbusError);
      return;
    }
    finish(p, undefined, Buffer.from(data));
  }

  function drop(reason: FailureReason, message: string): void {
    lastFailure = message;
    stats.last_error = message;
    if (socket) {
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      socket = undefined;
    }
    const wasConnected = connected;
    connected = false;
    // a partial answer of the lost connection would be glued to the first bytes of the next one
    mbap.clear();
    rtuReader.clear();
    retryAt = Date.now() + backoff;
    backoff = Math.min(backoff * 2, backoffMax);
    failAll(reason, message);
    opts.onConnection?.(wasConnected ? 'closed' : 'failed', message);
  }

  function connect(): void {
    if (socket || closed) return;
    const s = net.connect({ host: opts.host, port: opts.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 10_000 });
    socket = s;
    allowance = 0;
    s.setTimeout(connectTimeout);
    s.once('connect', () => {
      s.setTimeout(0);
      connected = true;
      backoff = backoffMin;
      stats.connects++;
      opts.onConnection?.('connected');
      pump();
    });
    s.on('timeout', () => drop('connection', `connection to ${opts.host}:${opts.port} timed out after ${connectTimeout} ms`));
    s.on('error', (err: NodeJS.ErrnoException) => drop('connection', `connection to ${opts.host}:${opts.port} failed: ${err.code ?? err.message}`));
    s.on('close', () => drop('connection', `connection to ${opts.host}:${opts.port} closed by the peer`));
    s.on('data', (chunk: Buffer) => {
      allowance -= chunk.length;
      if (allowance < 0) {
        drop('protocol', `${opts.host}:${opts.port} sent more than answers to the requests it was sent (answers to no request)`);
        return;
      }
      try {
        if (rtu) {
          rtuReader.push(chunk, (unit, pdu) => {
            const p = inFlight.get(0);
            if (p && p.unit === unit) onFrame(0, unit, pdu);
          });
        } else mbap.push(chunk, onFrame);
      } catch (err) {
        if (rtu) {
          // a frame RTU cannot delimit: the request it answers fails, the connection stays
          const p = inFlight.get(0);
          inFlight.delete(0);
          if (p) finish(p, err as ModbusError);
        } else {
          drop('protocol', (err as Error).message);
          return;
        }
      }
      pump();
    });
  }

  return {
    key: endpointKey(address),
    address,
    request(unit, pdu, timeoutMs, group) {
      return new Promise<Buffer>((resolve, reject) => {
        const p: Pending = { group, unit, pdu, timeoutMs, timer: undefined, sentAt: 0, tid: -1, resolve, reject };
        if (closed) return finish(p, new ModbusError('closed', 'the Modbus endpoint is closed'));
        if (!socket && Date.now() < retryAt) {
          return finish(p, new ModbusError('connection', `${lastFailure}; retrying in ${Math.ceil((retryAt - Date.now()) / 1000)} s`));
        }
        if (queue.length >= maxQueued) return finish(p, new ModbusError('queue_full', `more than ${maxQueued} requests wait for ${opts.host}:${opts.port}`));
        p.timer = setTimeout(onTimeout, timeoutMs + MAX_QUEUE_WAIT_MS, p);
        queue.push(p);
        if (!socket) connect();
        else pump();
      });
    },
    stats: () => ({ ...stats, in_flight: inFlight.size, queued: queue.length, connected }),
    close() {
      if (closed) return;
      closed = true;
      if (socket) {
        socket.removeAllListeners();
        socket.on('error', () => {});
        socket.destroy();
        socket = undefined;
      }
      connected = false;
      failAll('closed', 'the Modbus endpoint is closed');
    },
  };
}
