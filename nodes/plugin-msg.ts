/** What `flux decode` and `flux encode` read from a message: its bytes and its device's product. */
import type { FluxContext } from '../runtime/app/index.ts';
import type { Product } from '../runtime/registry/index.ts';
import type { NodeMessage } from './red.ts';

type ProductRef = Pick<Product, 'id' | 'key' | 'protocol_plugin_id'>;

/** The frame: `msg.raw` (set by `flux device in`), else `msg.payload` as bytes or UTF-8 text. */
export function bytesOf(msg: NodeMessage): Uint8Array {
  for (const v of [msg.raw, msg.payload]) {
    if (v instanceof Uint8Array) return v;
    if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) return Buffer.from((v as { data: number[] }).data);
  }
  if (typeof msg.payload === 'string') return Buffer.from(msg.payload, 'utf8');
  throw new Error('the message carries no bytes (msg.raw or msg.payload as a Buffer or string)');
}

/**
 * The product of the message when it is known without a registry read: `msg.product` naming its
 * plugin, or the device's product from the registry's identity cache (the per-message case).
 */
export function productNow(flux: FluxContext, msg: NodeMessage): ProductRef | undefined {
  const p = msg.product as Partial<ProductRef> | undefined;
  if (p && typeof p.id === 'string' && p.protocol_plugin_id !== undefined) return p as ProductRef;
  const id = (msg.device as { id?: string } | undefined)?.id;
  return id ? flux.registry.devices.cachedIdentity(id)?.product : undefined;
}

/** The product of the message: `msg.product` when it names its plugin, else the device's (cached by the registry). */
export async function productOf(flux: FluxContext, msg: NodeMessage): Promise<ProductRef | null> {
  const known = productNow(flux, msg);
  if (known) return known;
  const p = msg.product as Partial<ProductRef> | undefined;
  const device = msg.device as { id?: string; product_id?: string } | undefined;
  if (device?.id) {
    const identity = await flux.registry.devices.identity(device.id);
    if (identity) return identity.product;
  }
  const ref = device?.product_id ?? p?.id ?? p?.key;
  return ref ? flux.registry.products.find(ref) : null;
}
