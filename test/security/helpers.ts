/**
 * A FLUX instance in-process for the security tests (HTTP API, MQTT broker, TCP ingress; no Node-RED
 * unless asked), reached only through its real interfaces: HTTP, MQTT (mqtt.js, mosquitto clients) and TCP.
 */
import { run as runClient, type Run } from '../broker/access.ts';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { createFlux, type Flux } from '../../runtime/app/index.ts';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { tempDir, TEST_TOKEN } from '../helpers/flux-process.ts';

export interface Instance {
  flux: Flux;
  http: number;
  mqtt: number;
  mqttUrl: string;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

export async function startInstance(env: Record<string, string> = {}): Promise<Instance> {
  const settings = loadSettings({ FLUX_DATA_DIR: tempDir(), FLUX_HTTP_PORT: '0', FLUX_MQTT_PORT: '0', FLUX_HOST: '127.0.0.1', FLUX_ADMIN_TOKEN: TEST_TOKEN, ...env });
  const flux = createFlux({ settings, log: createLogger({ level: 'silent' }), flows: false });
  const ports = await flux.start();
  const base = `http://127.0.0.1:${ports.http}`;
  return {
    flux,
    http: ports.http,
    mqtt: ports.mqtt,
    mqttUrl: `mqtt://127.0.0.1:${ports.mqtt}`,
    async api(method, path, body) {
      const headers: Record<string, string> = { authorization: `Bearer ${TEST_TOKEN}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* text */
      }
      return { status: res.status, body: parsed };
    },
    stop: () => flux.stop(),
  };
}

/** Connects with mqtt.js; answers the client, or the CONNACK code it was refused with (3.1.1 return code / MQTT 5 reason code). */
export function mqttConnect(url: string, opts: IClientOptions): Promise<{ client?: MqttClient; refused?: number; error?: string }> {
  return new Promise((resolve) => {
    const c = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10_000, ...opts });
    c.once('connect', () => resolve({ client: c }));
    c.once('error', (err: Error & { code?: number }) => {
      c.end(true);
      resolve({ refused: err.code, error: err.message });
    });
    c.once('close', () => resolve({ error: 'closed before CONNACK' }));
  });
}

export type { Run } from '../broker/access.ts';

/** Runs a mosquitto client to completion (killed after `ms`): test/broker/access.ts's, with more time. */
export function run(cmd: string, args: string[], ms = 10_000): Promise<Run> {
  return runClient(cmd, args, ms);
}

/** Polls `check` every 50 ms until truthy; fails naming `what` after `ms`. */
export async function until<T>(what: string, check: () => Promise<T | undefined | false | null> | T | undefined | false | null, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
