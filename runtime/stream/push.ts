/**
 * RTMP push: one small ffmpeg per target, fed with the camera's FLV from the hub (one camera
 * connection feeds every output), so each target has its own status and its own retry (backoff
 * 1 s → 30 s) and a dead target never restarts the camera or the other targets.
 */
import type { Logger } from '../log/index.ts';
import type { FlvHub } from './flv.ts';
import { relayArgs } from './ffmpeg-args.ts';
import { spawnTied, type TiedProcess } from './process.ts';
import { hideCredentials } from './store.ts';

export type PushStatus = 'idle' | 'connecting' | 'live' | 'retrying';

export interface PushState {
  target: string;
  status: PushStatus;
  last_error: string | null;
  attempts: number;
  next_retry_at: string | null;
}

export interface RelayOptions {
  /** the clear URL */
  target: string;
  /** what the API shows */
  display: string;
  ffmpeg: string;
  pidDir: string;
  log: Logger;
  onStatus(state: PushState): void;
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

export class RtmpRelay {
  private readonly o: RelayOptions;
  private status: PushStatus = 'idle';
  private lastError: string | null = null;
  private attempts = 0;
  private nextRetryAt: number | null = null;
  private proc?: TiedProcess;
  private hub?: FlvHub;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(o: RelayOptions) {
    this.o = o;
  }

  state(): PushState {
    return { target: this.o.display, status: this.status, last_error: this.lastError, attempts: this.attempts, next_retry_at: this.nextRetryAt ? new Date(this.nextRetryAt).toISOString() : null };
  }

  private set(status: PushStatus, error?: string): void {
    if (error !== undefined) this.lastError = error;
    if (status === this.status && error === undefined) return;
    this.status = status;
    this.o.onStatus(this.state());
  }

  /** the camera has a new run: push it (now if ready, else once its first keyframe is there) */
  attach(hub: FlvHub): void {
    this.hub = hub;
    if (this.stopped) return;
    if (hub.ready) this.run();
    else hub.once('ready', () => this.hub === hub && this.run());
  }

  private run(): void {
    const hub = this.hub;
    if (this.stopped || this.proc || !hub || hub.ended) return;
    clearTimeout(this.timer);
    this.nextRetryAt = null;
    this.set(this.attempts === 0 ? 'connecting' : this.status);
    const proc = spawnTied(this.o.ffmpeg, relayArgs(this.o.target), { stdin: true, pidDir: this.o.pidDir, label: `push ${this.o.display}` });
    this.proc = proc;
    let stderr = '';
    proc.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-2048)));
    proc.stdout.resume();
    const stdin = proc.stdin!;
    const detach = hub.add({
      write: (b) => stdin.write(b),
      get writableLength() {
        return stdin.writableLength;
      },
      end: () => stdin.end(),
      destroy: () => stdin.destroy(),
    });
    const liveTimer = setTimeout(() => {
      this.attempts = 0;
      this.set('live', undefined);
    }, 2000);
    void proc.exited.then((code) => {
      clearTimeout(liveTimer);
      detach();
      this.proc = undefined;
      if (this.stopped) return;
      const camEnded = hub.ended;
      const line = hideCredentials(stderr, this.o.target, this.o.display).trim().split('\n').filter(Boolean).pop()?.slice(0, 300);
      const error = camEnded ? 'the camera run ended' : `push ffmpeg exited with status ${code}${line ? `: ${line}` : ''}`;
      if (camEnded) {
        // the next camera run re-attaches
        this.set('retrying', error);
        return;
      }
      this.attempts++;
      const min = this.o.backoffMinMs ?? 1000;
      const delay = Math.min(this.o.backoffMaxMs ?? 30_000, min * 2 ** Math.min(this.attempts - 1, 20));
      this.nextRetryAt = Date.now() + delay;
      this.o.log.warn({ target: this.o.display, code, error }, 'RTMP push ended; retrying');
      this.set('retrying', error);
      this.timer = setTimeout(() => this.run(), delay);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const p = this.proc;
    if (p) await p.stop(2000);
    this.set('idle');
  }
}
