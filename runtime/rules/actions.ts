/** What a triggered rule does: webhook POST with timeout and retries, device commands through the downlink service, the rate limit of send_command. */
import { FluxError } from '../errors/index.ts';

/** The downlink (runtime/ingress) as the rule engine uses it. */
export interface CommandSender {
  send(deviceId: string, command: string, params: Record<string, unknown>): Promise<{ status: string; reason?: string }>;
}

/** The downlink, or a 503 when this process has none (a rule engine built without device access). */
export function commandSender(s: CommandSender | undefined): CommandSender {
  if (!s) {
    throw new FluxError('downlink_unavailable', 'device commands need the downlink service, which is not running in this process', 503);
  }
  return s;
}

export interface WebhookConfig {
  url: string;
  method: 'POST' | 'PUT';
  headers?: Record<string, string>;
  timeout_ms: number;
  retries: number;
  backoff_ms: number;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/**
 * POSTs `body` as JSON; a non-2xx answer, a network error or a timeout is retried `retries` times
 * with exponential backoff (backoff_ms, 2×, 4×…). Resolves with the attempts made; rejects with
 * the last error after the last attempt (or when `stop` aborts).
 */
export async function postWebhook(cfg: WebhookConfig, body: unknown, stop: AbortSignal): Promise<number> {
  const payload = JSON.stringify(body);
  let lastError = '';
  for (let attempt = 1; attempt <= cfg.retries + 1; attempt++) {
    if (stop.aborted) break;
    try {
      const res = await fetch(cfg.url, {
        method: cfg.method,
        headers: { 'content-type': 'application/json', 'user-agent': 'flux-iot-rules', ...cfg.headers },
        body: payload,
        signal: AbortSignal.any([AbortSignal.timeout(cfg.timeout_ms), stop]),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return attempt;
      lastError = `HTTP ${res.status} ${res.statusText}`.trim();
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      lastError = e.name === 'TimeoutError' ? `no answer within ${cfg.timeout_ms} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
    }
    if (attempt <= cfg.retries) await sleep(cfg.backoff_ms * 2 ** (attempt - 1), stop);
  }
  throw Object.assign(new Error(`webhook ${cfg.method} ${cfg.url} failed after ${cfg.retries + 1} attempt(s): ${lastError}`), { attempts: cfg.retries + 1 });
}

/** A token bucket: `rate` per second, bursts up to `burst`. */
export class RateLimit {
  #tokens: number;
  #at = performance.now();
  readonly rate: number;
  readonly burst: number;
  constructor(rate: number, burst = Math.max(1, Math.ceil(rate * 2))) {
    this.rate = rate;
    this.burst = burst;
    this.#tokens = burst;
  }
  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) / 1000) * this.rate);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/** `{{values.temperature}}`, `{{device_id}}`… in an alarm message or command parameter, from the message. */
export function fillTemplate(template: string, msg: Record<string, unknown>): string {
  return template.replace(/\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g, (_m, path: string) => {
    let v: unknown = msg;
    for (const k of path.split('.')) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
    return v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  });
}
