/**
 * The supervisor of one camera: runs its ffmpeg, watches it, and restarts it on ANY exit (ffmpeg
 * exits with status 0 when a camera dies) and on a stall (no video frame for `stallMs`), with backoff
 * from `backoffMinMs` to `backoffMaxMs`. While a camera refuses connections, a cheap TCP probe
 * (no RTSP session) ends the wait as soon as the port opens again, so recovery is fast without a
 * retry storm; errors that a retry cannot fix (401, 404) only back off.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from '../log/index.ts';
import { FlvHub } from './flv.ts';
import { cameraArgs } from './ffmpeg-args.ts';
import { spawnTied, type TiedProcess } from './process.ts';
import { hideCredentials, redactRtsp, type Stream, type StreamSource } from './store.ts';

export const STATUSES = ['idle', 'starting', 'live', 'retrying', 'failed'] as const;
export type StreamStatus = (typeof STATUSES)[number];

export interface Timing {
  /** no video frame for this long while live: killed and restarted */
  stallMs: number;
  /** no video this long after a spawn: killed and retried */
  startTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** live this long: the backoff starts again from its minimum */
  stableMs: number;
  /** TCP probe period while the camera refuses connections */
  probeMs: number;
}

export const DEFAULT_TIMING: Timing = { stallMs: 5000, startTimeoutMs: 20_000, backoffMinMs: 1000, backoffMaxMs: 30_000, stableMs: 10_000, probeMs: 500 };

export interface RunnerState {
  status: StreamStatus;
  last_error: string | null;
  last_error_at: string | null;
  attempts: number;
  restarts: number;
  next_retry_at: string | null;
  /** the wait before the latest retry (ms): 1 s, 2 s, 4 s … 30 s */
  backoff_ms: number;
  live_since: string | null;
  pid: number | null;
}

export interface StatusChange {
  status: StreamStatus;
  previous: StreamStatus;
  error: string | null;
}

export interface RunnerOptions {
  id: string;
  dir: string;
  ffmpeg: string;
  pidDir: string;
  log: Logger;
  timing: Timing;
  recordSegmentS: number;
  load(): Promise<{ stream: Stream; source: StreamSource }>;
  onStatus(change: StatusChange): void;
  /** a new run's hub (relays attach to it) */
  onHub(hub: FlvHub): void;
  /** the camera process ended while wanted: the supervisor restarts it */
  onRestart(): void;
}

interface Failure {
  message: string;
  /** a retry cannot fix it (wrong credentials, wrong path) */
  permanent?: boolean;
  /** the camera is not listening: probe the port */
  down?: boolean;
}

export function classifyExit(stderr: string, code: number): Failure {
  if (/401 Unauthorized/i.test(stderr)) return { message: 'the camera refused the credentials (401 Unauthorized)', permanent: true };
  if (/403 Forbidden/i.test(stderr)) return { message: 'the camera refused access (403 Forbidden)', permanent: true };
  if (/404 Not Found/i.test(stderr)) return { message: 'the camera has no stream at this path (404 Not Found)', permanent: true };
  if (/Connection refused/i.test(stderr)) return { message: 'connection refused: the camera is down or the port is wrong', down: true };
  if (/No route to host|Network is unreachable|Name or service not known|Temporary failure in name resolution|Could not resolve/i.test(stderr)) {
    return { message: `camera unreachable: ${lastLine(stderr)}`, down: true };
  }
  if (/timed out|Operation timed out/i.test(stderr)) return { message: 'the camera stopped answering (timeout)' };
  if (code === 127) return { message: 'ffmpeg was not found (install it, or set FLUX_FFMPEG)', permanent: true };
  if (code === 0) return { message: 'the camera ended the stream (ffmpeg exited with status 0)' };
  return { message: `ffmpeg exited with status ${code}${stderr.trim() ? `: ${lastLine(stderr)}` : ''}` };
}

function lastLine(s: string): string {
  const lines = s.trim().split('\n').filter(Boolean);
  return (lines[lines.length - 1] ?? '').slice(0, 300);
}

export class StreamRunner {
  readonly id: string;
  private readonly o: RunnerOptions;
  private status: StreamStatus = 'idle';
  private lastError: string | null = null;
  private lastErrorAt: number | null = null;
  private attempts = 0;
  private restarts = 0;
  private nextRetryAt: number | null = null;
  private backoffMs = 0;
  private liveSince: number | null = null;
  private proc?: TiedProcess;
  private retryTimer?: NodeJS.Timeout;
  private probeTimer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private wanted = false;
  private launching = false;
  hub?: FlvHub;

  constructor(o: RunnerOptions) {
    this.id = o.id;
    this.o = o;
  }

  get running(): boolean {
    return this.wanted;
  }

  state(): RunnerState {
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    return {
      status: this.status,
      last_error: this.lastError,
      last_error_at: iso(this.lastErrorAt),
      attempts: this.attempts,
      restarts: this.restarts,
      next_retry_at: iso(this.nextRetryAt),
      backoff_ms: this.backoffMs,
      live_since: iso(this.liveSince),
      pid: this.proc?.pid ?? null,
    };
  }

  get statusNow(): StreamStatus {
    return this.status;
  }

  start(): void {
    if (this.wanted) return;
    this.wanted = true;
    this.attempts = 0;
    void this.launch();
  }

  async stop(): Promise<void> {
    this.wanted = false;
    this.clearTimers();
    const p = this.proc;
    if (p) await p.stop();
    this.setStatus('idle', null);
  }

  private setStatus(status: StreamStatus, error: string | null): void {
    if (error !== null) {
      this.lastError = error;
      this.lastErrorAt = Date.now();
    }
    if (status === this.status) return;
    const previous = this.status;
    this.status = status;
    this.o.onStatus({ status, previous, error: error ?? (status === 'live' ? null : this.lastError) });
  }

  private clearTimers(): void {
    clearTimeout(this.retryTimer);
    clearInterval(this.probeTimer);
    this.retryTimer = undefined;
    this.probeTimer = undefined;
    this.nextRetryAt = null;
  }

  private async launch(): Promise<void> {
    if (!this.wanted || this.proc || this.launching) return;
    this.launching = true;
    this.clearTimers();
    if (this.status === 'idle') this.setStatus('starting', null);
    let cfg: { stream: Stream; source: StreamSource };
    try {
      cfg = await this.o.load();
    } catch (err) {
      this.launching = false;
      this.onFailure({ message: (err as Error).message, permanent: true });
      return;
    }
    if (!this.wanted) {
      this.launching = false;
      return;
    }
    const live = path.join(this.o.dir, 'live');
    fs.rmSync(live, { recursive: true, force: true });
    fs.mkdirSync(live, { recursive: true });
    if (cfg.stream.record) fs.mkdirSync(path.join(this.o.dir, 'rec'), { recursive: true });
    const hub = new FlvHub();
    this.hub = hub;
    const proc = spawnTied(this.o.ffmpeg, cameraArgs(cfg.stream, cfg.source.url, this.o.recordSegmentS), { cwd: this.o.dir, pidDir: this.o.pidDir, label: `stream ${this.id}` });
    this.proc = proc;
    this.launching = false;
    const spawnedAt = Date.now();
    let lastFrame = spawnedAt;
    let frames = 0;
    let killReason: string | undefined;
    let stderr = '';
    proc.stdout.on('data', (chunk: Buffer) => {
      try {
        hub.push(chunk);
      } catch (err) {
        killReason = (err as Error).message;
        proc.kill();
      }
    });
    proc.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4096);
    });
    hub.once('ready', () => {
      this.liveSince = Date.now();
      this.setStatus('live', null);
    });
    this.o.onHub(hub);
    this.watchdog = setInterval(() => {
      const now = Date.now();
      // progress is video frames, not bytes: ffmpeg still writes a few bytes every ~5 s from a frozen camera
      if (hub.videoTags !== frames) {
        frames = hub.videoTags;
        lastFrame = now;
      }
      if (!hub.ready && now - spawnedAt > this.o.timing.startTimeoutMs) {
        killReason = `no video from the camera within ${Math.round(this.o.timing.startTimeoutMs / 1000)} s`;
        proc.kill();
      } else if (hub.ready && now - lastFrame > this.o.timing.stallMs) {
        killReason = `stalled: no video from the camera for ${Math.round((now - lastFrame) / 1000)} s`;
        // shown at once: the process may take a while to go (a loaded machine), the decision is made
        if (this.wanted) this.setStatus('retrying', killReason);
        proc.kill();
      }
    }, 500);
    this.watchdog.unref();
    const code = await proc.exited;
    clearInterval(this.watchdog);
    this.proc = undefined;
    hub.end();
    const wasLiveFor = this.liveSince ? Date.now() - this.liveSince : 0;
    this.liveSince = null;
    if (!this.wanted) return;
    this.restarts++;
    this.o.onRestart();
    if (wasLiveFor >= this.o.timing.stableMs) this.attempts = 0;
    const failure = killReason ? { message: killReason } : classifyExit(hideCredentials(stderr, cfg.source.url, redactRtsp(cfg.source.url)), code);
    this.o.log.warn({ stream: this.id, code, error: failure.message }, 'camera process ended; retrying');
    this.onFailure(failure, cfg.source.url);
  }

  private onFailure(f: Failure, url?: string): void {
    if (!this.wanted) return;
    this.attempts++;
    const t = this.o.timing;
    const delay = Math.min(t.backoffMaxMs, t.backoffMinMs * 2 ** Math.min(this.attempts - 1, 20));
    this.nextRetryAt = Date.now() + delay;
    this.backoffMs = delay;
    this.setStatus(f.permanent || this.attempts >= 6 ? 'failed' : 'retrying', f.message);
    this.retryTimer = setTimeout(() => void this.launch(), delay);
    if (f.down && url) this.probe(url);
  }

  /** while the camera refuses connections: retry as soon as its port accepts one */
  private probe(url: string): void {
    let host: string;
    let port: number;
    try {
      const u = new URL(url);
      host = u.hostname.replace(/^\[|\]$/g, '');
      port = Number(u.port) || (u.protocol === 'rtsps:' ? 322 : 554);
    } catch {
      return;
    }
    let busy = false;
    // Only a port seen closed and then open ends the backoff: when ffmpeg reports a refusal while the port
    // accepts (a redirect to a closed port, an answer naming a refusal), retrying at every probe is a storm.
    let sawClosed = false;
    this.probeTimer = setInterval(() => {
      if (busy) return;
      busy = true;
      const sock = net.connect({ host, port, timeout: 800 });
      const done = (open: boolean) => {
        sock.destroy();
        busy = false;
        if (!open) sawClosed = true;
        else if (sawClosed && this.probeTimer && this.wanted && !this.proc) {
          this.o.log.info({ stream: this.id }, 'camera port open again; retrying now');
          void this.launch();
        }
      };
      sock.once('connect', () => done(true));
      sock.once('error', () => done(false));
      sock.once('timeout', () => done(false));
    }, this.o.timing.probeMs);
    this.probeTimer.unref();
  }
}
