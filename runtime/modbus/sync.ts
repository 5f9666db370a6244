/**
 * Reads what to poll from the registry: every enabled device of a product with a valid
 * `transport.modbus` register map, with its endpoint (its own `transport.modbus`, or its gateway's
 * for a sub-device) and unit. A row that does not validate is skipped with a warning.
 */
import type { Device, DeviceIdentity, Product, Registry } from '../registry/index.ts';
import type { Logger } from '../log/index.ts';
import { normalizeRegister, planReads, type ReadBlock, type Register } from './codec.ts';
import { deviceModbusSchema, productModbusSchema, type ProductModbus } from './config.ts';
import type { EndpointAddress } from './endpoint.ts';

export interface PolledDevice {
  deviceId: string;
  identity: DeviceIdentity;
  endpoint: EndpointAddress;
  /** from the endpoint's device (or gateway) settings */
  maxInFlight?: number;
  unit: number;
  config: ProductModbus;
  registers: Register[];
  blocks: ReadBlock[];
  /** changes when anything that polling depends on changes */
  signature: string;
}

/** at most this many polled devices per process */
export const MAX_POLLED = 20_000;
const PAGE = 1000;

export async function readPolledDevices(registry: Registry, log: Logger, warned: Set<string>): Promise<Map<string, PolledDevice>> {
  const out = new Map<string, PolledDevice>();
  const products: Product[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await registry.products.list({ limit: PAGE, offset });
    products.push(...page.items);
    if (page.items.length < PAGE) break;
  }
  const gateways = new Map<string, Device | null>();
  const warnOnce = (key: string, obj: object, msg: string) => {
    if (warned.has(key)) return;
    warned.add(key);
    log.warn(obj, msg);
  };
  for (const product of products) {
    const raw = (product.transport as { modbus?: unknown } | null)?.modbus;
    if (raw === undefined) continue;
    const parsed = productModbusSchema.safeParse(raw);
    if (!parsed.success) {
      warnOnce(`p:${product.id}:${product.updated_at}`, { product: product.key, issues: parsed.error.issues.slice(0, 3) }, 'product transport.modbus is invalid: its devices are not polled');
      continue;
    }
    const config = parsed.data;
    const registers = config.registers.map(normalizeRegister);
    const blocks = planReads(registers);
    for (let offset = 0; ; offset += PAGE) {
      const page = await registry.devices.list({ product_id: product.id, enabled: true, limit: PAGE, offset });
      for (const device of page.items) {
        const own = deviceModbusSchema.safeParse((device.transport as { modbus?: unknown } | null)?.modbus ?? {});
        if (!own.success) {
          warnOnce(`d:${device.id}:${device.updated_at}`, { deviceId: device.id, issues: own.error.issues.slice(0, 3) }, 'device transport.modbus is invalid: not polled');
          continue;
        }
        let where = own.data;
        if (device.gateway_id) {
          let gw = gateways.get(device.gateway_id);
          if (gw === undefined) gateways.set(device.gateway_id, (gw = await registry.devices.find(device.gateway_id)));
          const g = gw ? deviceModbusSchema.safeParse((gw.transport as { modbus?: unknown } | null)?.modbus ?? {}) : undefined;
          // the gateway owns the connection: its host, port and mode; the sub-device gives its unit
          if (g?.success && g.data.host) where = { ...g.data, unit: own.data.unit ?? g.data.unit };
        }
        if (!where.host) {
          warnOnce(`h:${device.id}:${device.updated_at}`, { deviceId: device.id }, 'device of a Modbus product has no transport.modbus.host (nor a gateway with one): not polled');
          continue;
        }
        if (out.size >= MAX_POLLED) {
          warnOnce('max', { max: MAX_POLLED }, 'more Modbus devices than one process polls: the rest are left out');
          return out;
        }
        const endpoint: EndpointAddress = { host: where.host, port: where.port ?? 502, mode: where.mode ?? 'tcp' };
        const unit = where.unit ?? 1;
        out.set(device.id, {
          deviceId: device.id,
          identity: { device, product },
          endpoint,
          maxInFlight: where.max_in_flight,
          unit,
          config,
          registers,
          blocks,
          signature: JSON.stringify([endpoint, where.max_in_flight, unit, config, product.key, product.id]),
        });
      }
      if (page.items.length < PAGE) break;
    }
  }
  return out;
}
