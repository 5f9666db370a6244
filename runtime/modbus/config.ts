/**
 * `transport.modbus` in the registry: the register map on a product, the endpoint and unit on a
 * device (or, for a sub-device, the endpoint on its gateway). The API validates both with these
 * schemas; the master reads them with the same ones, so a row that fails is skipped, not half-used.
 */
import { z } from 'zod';
import { TYPE_WIDTH, type RegisterType } from './codec.ts';

const registerType = z.enum(['bool', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64']);
const order = z.enum(['big', 'little']);

export const registerSchema = z
  .object({
    property: z.string().min(1).max(64),
    function: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)], { error: 'must be 1 (coils), 2 (discrete inputs), 3 (holding registers) or 4 (input registers)' }),
    address: z.number().int().min(0).max(65535),
    quantity: z.number().int().min(1).max(4).optional(),
    type: registerType.optional(),
    word_order: order.optional(),
    byte_order: order.optional(),
    scale: z.number().finite().refine((v) => v !== 0, 'must not be 0').optional(),
    offset: z.number().finite().optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const type: RegisterType = r.type ?? (r.function <= 2 ? 'bool' : 'uint16');
    if (r.function <= 2 && type !== 'bool') ctx.addIssue({ code: 'custom', path: ['type'], message: `function ${r.function} reads bits: type must be bool` });
    const width = r.function <= 2 ? 1 : TYPE_WIDTH[type];
    if (r.quantity !== undefined && r.quantity !== width) ctx.addIssue({ code: 'custom', path: ['quantity'], message: `a ${type} takes ${width} ${r.function <= 2 ? 'bit' : 'register(s)'}; quantity must be ${width} or left out` });
    if (r.address + width - 1 > 65535) ctx.addIssue({ code: 'custom', path: ['address'], message: `a ${type} at ${r.address} runs past register 65535` });
  });

export const productModbusSchema = z
  .object({
    interval_ms: z.number().int().min(100).max(86_400_000).default(1000),
    timeout_ms: z.number().int().min(10).max(60_000).default(1000),
    /** consecutive failed polls after which a device shows offline */
    offline_after: z.number().int().min(1).max(1000).default(3),
    registers: z.array(registerSchema).min(1).max(1000),
  })
  .strict()
  .superRefine((m, ctx) => {
    const seen = new Set<string>();
    m.registers.forEach((r, i) => {
      if (seen.has(r.property)) ctx.addIssue({ code: 'custom', path: ['registers', i, 'property'], message: `property '${r.property}' is mapped twice` });
      seen.add(r.property);
    });
  });

const host = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9.:_-]+$/, 'must be a host name or an IP address');

/** On a device: where it is reached. A sub-device gives only `unit`; its gateway gives host, port and mode. */
export const deviceModbusSchema = z
  .object({
    host: host.optional(),
    port: z.number().int().min(1).max(65535).optional(),
    unit: z.number().int().min(0).max(255).optional(),
    mode: z.enum(['tcp', 'rtu-over-tcp']).optional(),
    /** Modbus TCP requests in flight at once on this endpoint (1 for gateways that cannot pipeline) */
    max_in_flight: z.number().int().min(1).max(64).optional(),
  })
  .strict();

export type ProductModbus = z.output<typeof productModbusSchema>;
export type DeviceModbus = z.output<typeof deviceModbusSchema>;

/** `transport` objects as the API accepts them: `modbus` checked, other transports as they are. */
export const productTransportSchema = z.object({ modbus: productModbusSchema.optional() }).catchall(z.unknown());
export const deviceTransportSchema = z.object({ modbus: deviceModbusSchema.optional() }).catchall(z.unknown());

/** The properties of the map that the thing model does not declare (when it declares any). */
export function undeclaredProperties(modbus: { registers: { property: string }[] }, metadata: { properties?: { id: string }[] } | undefined): string[] {
  const declared = metadata?.properties;
  if (!declared || declared.length === 0) return [];
  const ids = new Set(declared.map((p) => p.id));
  return modbus.registers.map((r) => r.property).filter((p) => !ids.has(p));
}
