/**
 * Demo data for the console's browser tests, screenshots and benchmark, made through the REST API
 * only: a JSON product with a thing model, devices, telemetry (HTTP uplinks with the device
 * secret), a rule that raises alarms, and optionally thousands of devices.
 */
export interface ApiClient {
  api(method: string, p: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
}

export const SEED_PRODUCT = {
  key: 'env_sensor',
  name: 'Environment sensor',
  description: 'temperature and humidity over JSON',
  metadata: {
    properties: [
      { id: 'temperature', name: 'Temperature', type: 'float', unit: '°C' },
      { id: 'humidity', name: 'Humidity', type: 'float', unit: '%' },
    ],
    events: [{ id: 'overheat', name: 'Overheat' }],
    commands: [{ id: 'set_interval', name: 'Set report interval' }],
  },
};

export interface Seeded {
  productId: string;
  devices: { id: string; secret: string }[];
  ruleId: string;
}

async function must(c: ApiClient, method: string, p: string, body?: unknown, headers?: Record<string, string>): Promise<any> {
  const r = await c.api(method, p, body, headers);
  if (r.status >= 300) throw new Error(`${method} ${p} → ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Posts one uplink `{ values }` for a device, the way a device without a connection does. */
export function uplink(c: ApiClient, dev: { id: string; secret: string }, values: Record<string, number>): Promise<any> {
  return must(c, 'POST', `/api/devices/${dev.id}/uplink`, { values }, { 'x-device-secret': dev.secret });
}

export async function seed(c: ApiClient, opts: { devices?: number; samples?: number; alarm?: boolean } = {}): Promise<Seeded> {
  const product = await must(c, 'POST', '/api/products', SEED_PRODUCT);
  const devices: Seeded['devices'] = [];
  for (let i = 1; i <= (opts.devices ?? 4); i++) {
    const d = await must(c, 'POST', '/api/devices', { id: `sensor_${i}`, product_id: product.id, name: `Sensor ${i}` });
    devices.push({ id: d.id, secret: d.secret });
  }
  const rule = await must(c, 'POST', '/api/rules', {
    name: 'high temperature',
    action_type: 'alarm',
    action_config: { level: 'critical', message: 'temperature {{values.temperature}} °C' },
    product_id: product.id,
    trigger_script: 'let temp = msg.values.temperature;\n\nif temp > 45.0 {\n    print("high temperature: " + temp);\n    return true;\n} else {\n    return false;\n}\n',
  });
  for (let s = 0; s < (opts.samples ?? 0); s++) {
    for (const [i, d] of devices.entries()) await uplink(c, d, { temperature: 20 + i * 2 + Math.sin(s / 3) * 3, humidity: 40 + i + Math.cos(s / 4) * 5 });
  }
  // One reading over the rule's threshold: a critical alarm.
  if (opts.alarm) await uplink(c, devices[0]!, { temperature: 47.5, humidity: 38 });
  return { productId: product.id, devices, ruleId: rule.id };
}

/** Many devices of one product, created through the API a few at a time (the 10,000-device targets). */
export async function bulkDevices(c: ApiClient, productId: string, n: number, prefix = 'bulk'): Promise<void> {
  const width = String(n).length;
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await must(c, 'POST', '/api/devices', { id: `${prefix}_${String(i).padStart(width, '0')}`, product_id: productId, name: `${prefix} ${i}` });
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}
