/** Drives load-worker processes: splits devices over them, connects, runs a rate, sums their reports. */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { LoadConfig, LoadDevice, LoadReport } from './load-worker.ts';

export type { LoadDevice, LoadReport };

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'load-worker.ts');

export interface LoadGroup {
  connected: number;
  failed: number;
  /** RSS of the generator processes after connecting, bytes */
  generatorRss: number;
  run(rate: number, seconds: number): Promise<LoadReport & { cpuPercentOfOneCore: number }>;
  close(): Promise<void>;
}

function ask<T>(child: ChildProcess, msg: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: T & { error?: string }) => {
      child.off('exit', onExit);
      if (m.error) reject(new Error(m.error));
      else resolve(m);
    };
    const onExit = (code: number | null) => reject(new Error(`load worker exited ${code}`));
    child.once('message', onMsg);
    child.once('exit', onExit);
    child.send(msg);
  });
}

export async function startLoad(opts: Omit<LoadConfig, 'devices' | 'localAddress'> & { devices: LoadDevice[]; processes: number; spreadSourceAddresses?: boolean }): Promise<LoadGroup> {
  const n = Math.max(1, Math.min(opts.processes, opts.devices.length));
  const children: ChildProcess[] = [];
  for (let i = 0; i < n; i++) children.push(fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const slices = children.map((_, i) => opts.devices.filter((_, j) => j % n === i));
  const answers = await Promise.all(
    children.map((c, i) =>
      ask<{ connected: number; failed: number; rss: number }>(c, {
        cmd: 'connect',
        config: { ...opts, devices: slices[i], localAddress: opts.spreadSourceAddresses ? `127.0.0.${2 + i}` : undefined },
      }),
    ),
  );
  return {
    connected: answers.reduce((s, a) => s + a.connected, 0),
    failed: answers.reduce((s, a) => s + a.failed, 0),
    generatorRss: answers.reduce((s, a) => s + a.rss, 0),
    async run(rate, seconds) {
      const reports = await Promise.all(children.map((c) => ask<{ done: LoadReport }>(c, { cmd: 'run', rate: rate / n, seconds }).then((m) => m.done)));
      const sum = (k: keyof LoadReport) => reports.reduce((s, r) => s + (r[k] as number), 0);
      const max = (k: keyof LoadReport) => Math.max(...reports.map((r) => r[k] as number));
      const wall = max('seconds');
      return {
        sent: sum('sent'),
        acked: sum('acked'),
        errors: sum('errors'),
        ackP50: max('ackP50'),
        ackP99: max('ackP99'),
        cpuUserMs: sum('cpuUserMs'),
        cpuSystemMs: sum('cpuSystemMs'),
        seconds: wall,
        cpuPercentOfOneCore: ((sum('cpuUserMs') + sum('cpuSystemMs')) / (wall * 1000)) * 100,
      };
    },
    async close() {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null) return resolve();
              c.once('exit', () => resolve());
              c.send({ cmd: 'exit' });
              setTimeout(() => c.kill('SIGKILL'), 3000).unref();
            }),
        ),
      );
    },
  };
}
