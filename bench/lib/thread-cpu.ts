/**
 * Per-thread CPU of a process (Linux `/proc/<pid>/task/<tid>/stat`), summed by thread name with its
 * number dropped (`flux-plugin-3` → `flux-plugin`, every `V8Worker` together), split into user and
 * kernel time. The probe prints it per step (bench/lib/profile-ingest.ts): which thread is the
 * constraint, and how much of it is system calls no JavaScript change can remove.
 */
import fs from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux architecture Node runs on

export type ThreadTicks = Map<string, { user: number; sys: number }>;

export function threadTicks(pid: number): ThreadTicks {
  const out: ThreadTicks = new Map();
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended between the listing and the read
    }
    // `pid (comm) state …`: comm may hold spaces and parentheses, so split after the last ')'
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close).replace(/-\d+$/, '');
    const fields = stat.slice(close + 2).split(' ');
    const t = out.get(name) ?? { user: 0, sys: 0 };
    t.user += Number(fields[11]); // utime, field 14 of the whole line
    t.sys += Number(fields[12]); // stime, field 15
    out.set(name, t);
  }
  return out;
}

/** One line per thread name busy between two readings: % of one core in user and in kernel time, busiest first. */
export function threadCpuLines(before: ThreadTicks, after: ThreadTicks, seconds: number): string[] {
  const rows: [string, number, number][] = [];
  for (const [name, b] of after) {
    const a = before.get(name) ?? { user: 0, sys: 0 };
    const pct = (ticks: number) => (ticks * 100) / TICKS_PER_SECOND / seconds;
    const user = pct(b.user - a.user);
    const sys = pct(b.sys - a.sys);
    if (user + sys >= 0.5) rows.push([name, user, sys]);
  }
  return rows.sort((x, y) => y[1] + y[2] - (x[1] + x[2])).map(([name, user, sys]) => `${name.padEnd(16)} ${(user + sys).toFixed(1).padStart(5)} % of a core (user ${user.toFixed(1)}, kernel ${sys.toFixed(1)})`);
}
