/** Helpers of the rule and alarm tests: the real FLUX process with a given flow, a recording HTTP server, MQTT devices. */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { startFlux, tempDir, type FluxProcess } from '../helpers/flux-process.ts';

/** Starts FLUX with `flow` installed as the user's flow (the default flow is only copied when none exists). */
export async function startFluxWithFlow(flow: unknown[], env: Record<string, string> = {}): Promise<FluxProcess> {
  const dataDir = tempDir('flux-rules-');
  fs.mkdirSync(path.join(dataDir, 'node-red'), { recursive: true });
  fs.writeFileSync(path.join(dataDir, 'node-red', 'flows.json'), JSON.stringify(flow));
  return startFlux({ FLUX_LOG_LEVEL: 'warn', ...env }, { dataDir });
}

export interface Received {
  path: string;
  body: any;
  at: number;
}

/** A local HTTP server that records every request; `status(path)` chooses the answer per path. */
export async function recorder(status: (path: string) => number = () => 200): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      let body: unknown = data;
      try {
        body = JSON.parse(data);
      } catch {
        /* keep text */
      }
      received.push({ path: req.url ?? '', body, at: Date.now() });
      res.statusCode = status(req.url ?? '');
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Creates a product (no plugin: JSON uplinks) and devices; answers their secrets. */
export async function provision(f: FluxProcess, productKey: string, deviceIds: string[]): Promise<{ productId: string; secrets: Record<string, string> }> {
  const p = await f.api('POST', '/api/products', { key: productKey, name: productKey });
  if (p.status !== 201) throw new Error(`product: ${p.status} ${JSON.stringify(p.body)}`);
  const secrets: Record<string, string> = {};
  for (const id of deviceIds) {
    const d = await f.api('POST', '/api/devices', { id, product_id: p.body.id });
    if (d.status !== 201) throw new Error(`device ${id}: ${d.status} ${JSON.stringify(d.body)}`);
    secrets[id] = d.body.secret;
  }
  return { productId: p.body.id, secrets };
}

export async function connectDevice(f: FluxProcess, deviceId: string, secret: string): Promise<MqttClient> {
  const c = mqtt.connect(`mqtt://127.0.0.1:${f.mqtt}`, { username: deviceId, password: secret, clientId: `${deviceId}/${process.pid}`, reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

/** Publishes a JSON property report (QoS 1: resolves once the broker has it). */
export function report(c: MqttClient, productKey: string, deviceId: string, values: Record<string, unknown>): Promise<unknown> {
  return c.publishAsync(`/${productKey}/${deviceId}/properties/report`, JSON.stringify({ values }), { qos: 1 });
}
