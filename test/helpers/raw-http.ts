/**
 * HTTP requests with the path sent exactly as written (like `curl --path-as-is`): no normalisation
 * of `.`/`..`, no re-encoding. fetch() would resolve `..` before sending, hiding the attack.
 */
import http from 'node:http';

export interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** the parsed JSON answer, or undefined */
  body: any;
}

export function rawRequest(port: number, method: string, rawPath: string, opts: { headers?: Record<string, string | number>; body?: Buffer | string; timeoutMs?: number } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    // Content-Length always: Node sends a GET body unframed otherwise, and the server sees it as a second request.
    const headers = opts.body === undefined ? opts.headers : { 'content-length': Buffer.byteLength(opts.body), ...opts.headers };
    const req = http.request({ host: '127.0.0.1', port, method, path: rawPath, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
      });
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 15_000, () => req.destroy(new Error(`${method} ${rawPath.slice(0, 100)}: no answer in time`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}
