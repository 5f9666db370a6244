/** Writes the project document (runtime/project/schema.ts) from this instance's modules. */
import type { Page, ListOptions } from '../registry/index.ts';
import { PROJECT_FORMAT, PROJECT_FORMAT_VERSION, type ProjectDocument } from './schema.ts';
import type { ProjectDeps } from './index.ts';

/** Every item of a paged list (the registry answers at most 1000 a page). */
export async function allPages<T>(list: (page: ListOptions) => Promise<Page<T>>): Promise<T[]> {
  const out: T[] = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await list({ limit: 1000, offset });
    out.push(...page.items);
    if (page.items.length < 1000) return out;
  }
}

const PLUGIN_NODES = new Set(['flux decode', 'flux encode']);

/**
 * The flows with each plugin node's build recorded: the editor records it when the node's dialog is
 * saved (nodes/flux-decode.html); a node saved before that, or written by hand, gets the active one.
 */
export function stampPluginBuilds(flows: Record<string, unknown>[], active: Map<string, { version: number; sha256: string }>): Record<string, unknown>[] {
  return flows.map((n) => {
    if (!PLUGIN_NODES.has(String(n.type)) || typeof n.plugin !== 'string' || !n.plugin || n.pluginSha256) return n;
    const a = active.get(n.plugin);
    return a ? { ...n, pluginVersion: String(a.version), pluginSha256: a.sha256 } : n;
  });
}

export async function exportProject(deps: ProjectDeps): Promise<ProjectDocument> {
  const { registry, rules, plugins } = deps;
  const products = await allPages((p) => registry.products.list(p));
  const devices = await allPages((p) => registry.devices.list(p));
  const active = new Map<string, { version: number; sha256: string }>();
  const pluginList: ProjectDocument['plugins'] = [];
  for (const info of await plugins.list()) {
    const v = info.versions.find((x) => x.active);
    if (!v) continue;
    active.set(info.id, { version: v.version, sha256: v.sha256 });
    const limits = v.meta.limits;
    pluginList.push({
      id: info.id,
      version: v.version,
      sha256: v.sha256,
      ...(limits ? { limits: { deadline_ms: limits.deadline_ms, memory_mib: limits.memory_mib } } : {}),
      wasm: (await plugins.wasm(info.id, v.version)).toString('base64'),
    });
  }
  const flows = deps.flows ? stampPluginBuilds(await deps.flows.flows(), active) : undefined;
  return {
    format: PROJECT_FORMAT,
    format_version: PROJECT_FORMAT_VERSION,
    flux_version: deps.version,
    exported_at: new Date().toISOString(),
    products: products.map((p) => ({
      id: p.id,
      key: p.key,
      name: p.name,
      description: p.description,
      protocol_plugin_id: p.protocol_plugin_id,
      metadata: p.metadata,
      transport: p.transport as never,
      auto_register_children: p.auto_register_children,
      child_product_id: p.child_product_id,
    })),
    // No secrets: the registry keeps only their hashes, and a copy of a project must not let
    // anyone who reads the file connect as its devices. The import generates new ones.
    devices: devices.map((d) => ({
      id: d.id,
      product_id: d.product_id,
      name: d.name,
      enabled: d.enabled,
      tags: d.tags,
      is_gateway: d.is_gateway,
      gateway_id: d.gateway_id,
      transport: d.transport as never,
    })),
    rules: (await rules.list({})).map((r) => ({
      name: r.name,
      enabled: r.enabled,
      trigger_script: r.trigger_script,
      action_type: r.action_type,
      action_config: r.action_config,
      product_id: r.product_id,
      device_id: r.device_id,
      env: r.env,
    })),
    plugins: pluginList,
    ...(flows ? { flows: flows as ProjectDocument['flows'] } : {}),
  };
}
