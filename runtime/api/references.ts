/**
 * Referential checks of request bodies: a product, device or plugin a body names must exist, else
 * 400 `unknown_reference` naming the field and the value (runtime/errors). One place, so every
 * route (and the GraphQL mutations) refuse the same way.
 */
import type { FluxContext } from '../app/context.ts';
import { unknownReference } from '../errors/index.ts';
import type { Product } from '../registry/index.ts';

export interface PluginsLike {
  activeVersion(id: string): number | undefined;
}

export interface References {
  /** the product of an id or key */
  product(field: string, idOrKey: string): Promise<Product>;
  device(field: string, id: string): Promise<void>;
  /** an installed plugin with an active version */
  plugin(field: string, id: string): void;
}

/** `plugins`: the plugin host, for plugin references (routes that name no plugin leave it out). */
export function createReferences(ctx: FluxContext, plugins?: PluginsLike): References {
  return {
    async product(field, idOrKey) {
      const p = await ctx.registry.products.find(idOrKey);
      if (!p) throw unknownReference(field, 'product', idOrKey);
      return p;
    },
    async device(field, id) {
      if (!(await ctx.registry.devices.find(id))) throw unknownReference(field, 'device', id);
    },
    plugin(field, id) {
      if (!plugins) throw new Error(`createReferences was built without the plugin host: cannot check ${field}`);
      if (plugins.activeVersion(id) === undefined) throw unknownReference(field, 'plugin', id);
    },
  };
}
