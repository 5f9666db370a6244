/**
 * Starts the real FLUX process (`node runtime/cli.ts`) on free ports with a fresh data dir, the way a
 * user runs it, and reads the ports from its `flux ready http=… mqtt=…` line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TEST_TOKEN = 'test-admin-token-0123456789abcdef';

export interface FluxProcess {
  http: number;
  mqtt: number;
  token: string;
  dataDir: string;
  url: string;
  child: ChildProcess;
  /** everything the process printed so far (stdout + stderr) */
  output(): string;
  /** GET/POST… /api paths with the token; answers status + parsed JSON (or text) */
  api(method: string, p: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  /** SIGTERM and wait for exit; answers the exit code */
  stop(): Promise<number | null>;
}

/** Every FLUX this test process started: killed when it exits (mocha --exit, a failed hook, a timeout). */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export function tempDir(prefix = 'flux-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function startFlux(env: Record<string, string> = {}, opts: { dataDir?: string; timeoutMs?: number } = {}): Promise<FluxProcess> {
  const dataDir = opts.dataDir ?? tempDir();
  const child = spawn(process.execPath, [path.join(ROOT, 'runtime', 'cli.ts')], {
    cwd: ROOT,
    env: { ...process.env, FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_DATA_DIR: dataDir, FLUX_ADMIN_TOKEN: TEST_TOKEN, FLUX_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ports = await new Promise<{ http: number; mqtt: number }>((resolve, reject) => {
    // A process that misses its deadline is killed: left running, it keeps its ports and CPU and
    // slows every later start on a loaded machine (seen: 99 leaked processes, load 100).
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`FLUX did not print its ready line within ${opts.timeoutMs ?? 60000} ms:\n${out}`));
    }, opts.timeoutMs ?? 60000);
    const check = () => {
      const m = /flux ready http=(\d+) mqtt=(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ http: Number(m[1]), mqtt: Number(m[2]) });
      }
    };
    child.stdout!.on('data', check);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`FLUX exited with ${code} before it was ready:\n${out}`));
    });
  });
  const token = env.FLUX_ADMIN_TOKEN ?? TEST_TOKEN;
  const url = `http://127.0.0.1:${ports.http}`;
  return {
    ...ports,
    token,
    dataDir,
    url,
    child,
    output: () => out,
    async api(method, p, body, headers = {}) {
      const init: RequestInit = { method, headers: { authorization: `Bearer ${token}`, ...headers } };
      if (body !== undefined) {
        if (typeof body === 'string' || Buffer.isBuffer(body)) init.body = body as BodyInit;
        else {
          init.body = JSON.stringify(body);
          (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
        }
      }
      const res = await fetch(url + p, init);
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON */
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
