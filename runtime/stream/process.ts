/**
 * ffmpeg processes that cannot outlive FLUX.
 *
 * Each ffmpeg runs under a tiny /bin/sh keeper that holds fd 3, one end of a socket pair whose
 * other end only FLUX holds. When FLUX ends in any way (even SIGKILL) the kernel closes its end,
 * the keeper's `read` returns and it kills ffmpeg: the `prctl(PR_SET_PDEATHSIG)` behaviour without
 * native code. The keeper leads its own process group, so a stop signals keeper and ffmpeg
 * together, and it waits for its children, so nothing is left as a zombie. As a last line, every
 * keeper's pid and start time are recorded in `streams/.pids/` and leftovers are killed on start.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Writable, Readable } from 'node:stream';

// fd 4 keeps the caller's stdin for ffmpeg (a background job's stdin is /dev/null otherwise);
// the watcher asks ffmpeg to finish (TERM), then kills it if it has not after 3 s.
const KEEPER = [
  'exec 4<&0 </dev/null',
  '"$@" <&4 4<&- 3<&- &',
  'c=$!',
  'exec 4<&-',
  '( read _ <&3; kill -TERM $c 2>/dev/null; sleep 3; kill -KILL $c 2>/dev/null ) &',
  'w=$!',
  'exec 3<&-',
  "trap 'kill -TERM $c 2>/dev/null' TERM INT",
  'wait $c; s=$?',
  'while kill -0 $c 2>/dev/null; do wait $c; s=$?; done',
  'kill $w 2>/dev/null; wait $w 2>/dev/null',
  'exit $s',
].join('\n');

export interface TiedProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  readonly stdin: Writable | null;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** resolves with the exit code (signals as 128 + n) once the keeper and ffmpeg are gone */
  readonly exited: Promise<number>;
  /** TERM (ffmpeg finishes its files), then KILL after `graceMs` */
  stop(graceMs?: number): Promise<number>;
  kill(): void;
}

export interface SpawnOptions {
  cwd?: string;
  /** give ffmpeg a writable stdin (a relay reading FLV from FLUX) */
  stdin?: boolean;
  /** where the pid record goes (`<dataDir>/streams/.pids`) */
  pidDir: string;
  /** a label kept in the pid record */
  label: string;
}

function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function spawnTied(command: string, args: string[], opts: SpawnOptions): TiedProcess {
  const child = spawn('/bin/sh', ['-c', KEEPER, 'flux-keeper', command, ...args], {
    cwd: opts.cwd,
    detached: true,
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', 'pipe'],
  });
  const pid = child.pid ?? -1;
  const record = path.join(opts.pidDir, `${pid}.json`);
  if (pid > 0) {
    try {
      fs.mkdirSync(opts.pidDir, { recursive: true });
      fs.writeFileSync(record, JSON.stringify({ pid, start: startTime(pid), label: opts.label }));
    } catch {
      /* the keeper still ties ffmpeg to FLUX; the record is only the last line */
    }
  }
  const exited = new Promise<number>((resolve) => {
    child.once('error', () => resolve(127));
    child.once('close', (code, signal) => {
      fs.rm(record, { force: true }, () => undefined);
      resolve(code ?? (signal ? 128 + (({ SIGKILL: 9, SIGTERM: 15, SIGINT: 2 }) as Record<string, number>)[signal]! || 1 : 1));
    });
  });
  const signal = (sig: NodeJS.Signals) => {
    if (pid <= 0 || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-pid, sig);
    } catch {
      /* already gone */
    }
  };
  // The lifeline: never written, only held. The child side is fd 3 of the keeper.
  const lifeline = child.stdio[3] as unknown as { on(e: string, f: () => void): void } | null;
  lifeline?.on('error', () => undefined);
  child.stdin?.on('error', () => undefined);
  return {
    pid,
    child,
    stdin: child.stdin,
    stdout: child.stdout!,
    stderr: child.stderr!,
    exited,
    kill: () => signal('SIGKILL'),
    stop(graceMs = 3000) {
      signal('SIGTERM');
      const t = setTimeout(() => signal('SIGKILL'), graceMs);
      return exited.finally(() => clearTimeout(t));
    },
  };
}

/** Kills process groups recorded by an earlier FLUX that did not stop cleanly; returns how many. */
export function reapLeftovers(pidDir: string): number {
  let killed = 0;
  let names: string[];
  try {
    names = fs.readdirSync(pidDir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!/^\d{1,10}\.json$/.test(name)) continue;
    const file = path.join(pidDir, name);
    try {
      const rec = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid: number; start?: string };
      // the same pid with the same start time: still that keeper, not a recycled pid
      if (Number.isInteger(rec.pid) && rec.pid > 1 && rec.start && startTime(rec.pid) === rec.start) {
        process.kill(-rec.pid, 'SIGKILL');
        killed++;
      }
    } catch {
      /* gone already, or unreadable */
    }
    fs.rmSync(file, { force: true });
  }
  return killed;
}
