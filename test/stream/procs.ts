/** Process-table checks for the stream tests: ffmpeg processes by camera port, zombies by parent. */
import fs from 'node:fs';

export interface Proc {
  pid: number;
  ppid: number;
  state: string;
  cmd: string;
}

export function processes(): Proc[] {
  const out: Proc[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      out.push({ pid: Number(name), ppid: Number(rest[1]), state: rest[0]!, cmd });
    } catch {
      /* gone */
    }
  }
  return out;
}

/** live ffmpeg processes reading from this camera port (zombies have no command line) */
export const ffmpegFor = (port: number) => processes().filter((p) => p.cmd.startsWith('ffmpeg') && p.cmd.includes(`:${port}/`) && p.state !== 'Z');
export const keepersOf = (ppid: number) => processes().filter((p) => p.ppid === ppid && (p.cmd.includes('flux-keeper') || p.state === 'Z'));
export const zombiesOf = (ppid: number) => processes().filter((p) => p.ppid === ppid && p.state === 'Z');

export async function until<T>(what: string, timeoutMs: number, fn: () => T | Promise<T>): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}
