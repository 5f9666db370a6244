/** The test camera (test/stream/camera.py, GStreamer's RTSP server) as a child process. */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'camera.py');

export interface Camera {
  port: number;
  url: string;
  child: ChildProcess;
  /** kills it (SIGKILL) and waits for the exit */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a frozen camera */
  freeze(): void;
  thaw(): void;
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export async function startCamera(opts: { port?: number; size?: string; fps?: number; user?: string; password?: string } = {}): Promise<Camera> {
  const port = opts.port ?? (await freePort());
  const args = [SCRIPT, String(port), '--size', opts.size ?? '640x360', '--fps', String(opts.fps ?? 25)];
  if (opts.user) args.push('--user', opts.user, '--password', opts.password ?? '');
  // /usr/bin/python3: a python3 earlier on PATH may not have the GStreamer bindings
  const child = spawn('/usr/bin/python3', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`camera not ready: ${out}`)), 10_000);
    child.stdout!.on('data', () => {
      if (out.includes('ready rtsp://')) {
        clearTimeout(t);
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`camera exited: ${out}`)));
  });
  return {
    port,
    url: `rtsp://127.0.0.1:${port}/test`,
    child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    freeze: () => child.kill('SIGSTOP'),
    thaw: () => child.kill('SIGCONT'),
  };
}
