/**
 * Snapshots: one JPEG from ffmpeg (from a running stream's latest keyframe, or a one-shot capture
 * from the camera), and the snapshots kept on disk per stream that flows link to.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FluxError } from '../errors/index.ts';
import { spawnTied } from './process.ts';
import { snapshotArgs } from './ffmpeg-args.ts';
import { hideCredentials, redactRtsp } from './store.ts';

/** the newest snapshots kept per stream */
export const MAX_KEPT_SNAPSHOTS = 50;
/** a kept snapshot's file name: its time in ms */
export const SNAPSHOT_RE = /^\d{13,14}\.jpg$/;
/** more output than any JPEG of a camera frame: the process is killed */
const MAX_JPEG_BYTES = 20 << 20;

/**
 * A JPEG from ffmpeg: of `flv` (a keyframe in FLV, fed on stdin) or of the camera at `url`. Throws
 * 502 `snapshot_failed` with ffmpeg's last line when no JPEG comes within `timeoutMs`.
 */
export async function captureJpeg(ffmpeg: string, pidDir: string, url: string | undefined, flv: Buffer | undefined, timeoutMs: number): Promise<Buffer> {
  const proc = spawnTied(ffmpeg, snapshotArgs(url), { stdin: flv !== undefined, pidDir, label: 'snapshot' });
  const out: Buffer[] = [];
  let size = 0;
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => {
    size += c.length;
    if (size > MAX_JPEG_BYTES) proc.kill();
    else out.push(c);
  });
  proc.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-2048)));
  if (flv) proc.stdin!.end(flv);
  const timer = setTimeout(() => proc.kill(), timeoutMs);
  const code = await proc.exited;
  clearTimeout(timer);
  const jpeg = Buffer.concat(out);
  if (code !== 0 || jpeg.length < 4 || jpeg[0] !== 0xff || jpeg[1] !== 0xd8) {
    const line = hideCredentials(stderr, url, url ? redactRtsp(url) : '').trim().split('\n').pop()?.slice(0, 300);
    throw new FluxError('snapshot_failed', `no snapshot from the camera${line ? `: ${line}` : code !== 0 ? ` (timeout or exit ${code})` : ''}`, 502);
  }
  return jpeg;
}

/** Writes `jpeg` into `dir` under a file name of its time, and drops all but the newest MAX_KEPT_SNAPSHOTS. */
export function keepSnapshot(dir: string, jpeg: Buffer): { file: string; ts: number } {
  fs.mkdirSync(dir, { recursive: true });
  let ts = Date.now();
  while (fs.existsSync(path.join(dir, `${ts}.jpg`))) ts++;
  const file = `${ts}.jpg`;
  fs.writeFileSync(path.join(dir, file), jpeg);
  const old = fs.readdirSync(dir).filter((f) => SNAPSHOT_RE.test(f)).sort();
  for (const f of old.slice(0, Math.max(0, old.length - MAX_KEPT_SNAPSHOTS))) fs.rmSync(path.join(dir, f), { force: true });
  return { file, ts };
}
