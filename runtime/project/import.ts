/**
 * Reads a project document into this instance. Everything is checked before anything is written:
 * the document's shape and bounds (schema.ts), its references (devices name products and gateways
 * of the document, plugin bytes match their sha256), and conflicts with what is here (a product key,
 * device id, or plugin id with other bytes). Then plugins, products, devices (new secrets, answered
 * once), rules and flows are written in that order; a failure removes what this import created.
 */
import crypto from 'node:crypto';
import { badRequest, conflict, isFluxError } from '../errors/index.ts';
import { checkSlug } from '../safe-id/index.ts';
import { allPages } from './export.ts';
import type { ProjectDocument, ProjectDevice } from './schema.ts';
import type { ProjectDeps } from './index.ts';

export interface ImportReport {
  products: number;
  /** each device with its new secret: shown this once (the registry keeps only a hash) */
  devices: { id: string; secret: string }[];
  rules: number;
  /** `installed: false` when this instance had the same bytes already */
  plugins: { id: string; version: number; sha256: string; installed: boolean }[];
  /** flow nodes deployed; null when the document has no flows (the instance's flows stay) */
  flows: number | null;
  warnings: string[];
}

const list = (items: string[], max = 10) => items.slice(0, max).map((i) => `'${i}'`).join(', ') + (items.length > max ? ` and ${items.length - max} more` : '');

function duplicates(values: string[]): string[] {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const v of values) (seen.has(v) ? dup : seen).add(v);
  return [...dup];
}

/** Devices in an order where each gateway comes before the devices that report through it. */
function gatewaysFirst(devices: ProjectDevice[], existing: Set<string>): ProjectDevice[] {
  const placed = new Set<string>();
  const out: ProjectDevice[] = [];
  let rest = devices;
  while (rest.length) {
    const next: ProjectDevice[] = [];
    for (const d of rest) {
      if (!d.gateway_id || placed.has(d.gateway_id) || existing.has(d.gateway_id)) {
        out.push(d);
        placed.add(d.id);
      } else next.push(d);
    }
    if (next.length === rest.length) throw badRequest(`devices: the gateways of ${list(next.map((d) => d.id))} are not in the project (or form a cycle)`);
    rest = next;
  }
  return out;
}

interface Plan {
  bytes: Map<string, Buffer>;
  /** plugin ids this instance has with the same active bytes: not installed again */
  present: Set<string>;
  devices: ProjectDevice[];
  warnings: string[];
}

/** Every check that needs no write; throws 400 / 409 with what is wrong. */
async function plan(deps: ProjectDeps, doc: ProjectDocument): Promise<Plan> {
  const warnings: string[] = [];
  for (const [what, values] of [
    ['product keys', doc.products.map((p) => p.key)],
    ['product ids', doc.products.map((p) => p.id)],
    ['device ids', doc.devices.map((d) => d.id)],
    ['plugin ids', doc.plugins.map((p) => p.id)],
  ] as const) {
    const dup = duplicates(values);
    if (dup.length) throw badRequest(`the project repeats ${what}: ${list(dup)}`);
  }
  const productIds = new Set(doc.products.map((p) => p.id));
  for (const p of doc.products) {
    if (p.child_product_id && !productIds.has(p.child_product_id)) throw badRequest(`products.${p.key}.child_product_id: '${p.child_product_id}' is not a product of the project`);
  }
  for (const d of doc.devices) {
    if (!productIds.has(d.product_id)) throw badRequest(`devices.${d.id}.product_id: '${d.product_id}' is not a product of the project`);
  }
  const bytes = new Map<string, Buffer>();
  for (const p of doc.plugins) {
    checkSlug('plugin', p.id);
    const wasm = Buffer.from(p.wasm, 'base64');
    if (crypto.createHash('sha256').update(wasm).digest('hex') !== p.sha256) throw badRequest(`plugins.${p.id}: the wasm bytes do not match their sha256`);
    bytes.set(p.id, wasm);
  }

  // Conflicts with what this instance has.
  const taken = (await Promise.all(doc.products.map((p) => deps.registry.products.find(p.key)))).flatMap((found, i) => (found ? [doc.products[i]!.key] : []));
  if (taken.length) throw conflict(`products with the keys ${list(taken)} exist here already`);
  const here = new Set((await allPages((pg) => deps.registry.devices.list(pg))).map((d) => d.id));
  const clash = doc.devices.filter((d) => here.has(d.id)).map((d) => d.id);
  if (clash.length) throw conflict(`devices ${list(clash)} exist here already`);
  const installed = new Map((await deps.plugins.list()).map((p) => [p.id, p]));
  const present = new Set<string>();
  for (const p of doc.plugins) {
    const mine = installed.get(p.id);
    if (!mine) continue;
    const active = mine.versions.find((v) => v.active);
    if (active?.sha256 === p.sha256) present.add(p.id);
    else throw conflict(`plugin '${p.id}' is installed here with other bytes (active v${active?.version ?? '-'}, sha256 ${active?.sha256.slice(0, 12) ?? '-'}…; the project has sha256 ${p.sha256.slice(0, 12)}…)`);
  }
  const available = new Set([...installed.keys(), ...bytes.keys()]);
  for (const p of doc.products) {
    if (p.protocol_plugin_id && !available.has(p.protocol_plugin_id)) warnings.push(`product '${p.key}' uses plugin '${p.protocol_plugin_id}', which is neither in the project nor installed here`);
  }
  for (const n of doc.flows ?? []) {
    const plugin = (n as { plugin?: unknown }).plugin;
    if ((n.type === 'flux decode' || n.type === 'flux encode') && typeof plugin === 'string' && plugin && !available.has(plugin)) {
      warnings.push(`flow node ${n.id} (${n.type}) needs plugin '${plugin}' v${String((n as { pluginVersion?: unknown }).pluginVersion ?? '?')}, which is neither in the project nor installed here`);
    }
  }
  if (doc.flows && !deps.flows) warnings.push('this instance runs without flows: the flows of the project were not deployed');
  // The deploy's own check (http in paths under /api, /editor, /console, /mqtt…), before anything is written.
  if (doc.flows && deps.flows) deps.flows.check(doc.flows);
  return { bytes, present, devices: gatewaysFirst(doc.devices, here), warnings };
}

/** The flows with product ids of the source instance replaced by this instance's. */
function mapFlows(flows: NonNullable<ProjectDocument['flows']>, productIds: Map<string, string>): Record<string, unknown>[] {
  return flows.map((n) => (n.type === 'flux device in' && typeof n.product === 'string' && productIds.has(n.product) ? { ...n, product: productIds.get(n.product) } : n));
}

export async function importProject(deps: ProjectDeps, doc: ProjectDocument): Promise<ImportReport> {
  const p = await plan(deps, doc);
  const created = { plugins: [] as string[], products: [] as string[], devices: [] as string[], rules: [] as string[] };
  const report: ImportReport = { products: 0, devices: [], rules: 0, plugins: [], flows: null, warnings: p.warnings };
  try {
    for (const plugin of doc.plugins) {
      if (p.present.has(plugin.id)) {
        report.plugins.push({ id: plugin.id, version: deps.plugins.activeVersion(plugin.id) ?? 0, sha256: plugin.sha256, installed: false });
        continue;
      }
      const { version } = await deps.plugins.install(plugin.id, p.bytes.get(plugin.id)!, 'api', plugin.limits ?? {});
      created.plugins.push(plugin.id);
      report.plugins.push({ id: plugin.id, version: version.version, sha256: version.sha256, installed: true });
    }
    const productIds = new Map<string, string>();
    for (const src of doc.products) {
      const made = await deps.registry.products.create({
        key: src.key,
        name: src.name,
        description: src.description ?? null,
        protocol_plugin_id: src.protocol_plugin_id ?? null,
        metadata: src.metadata,
        transport: src.transport,
        auto_register_children: src.auto_register_children,
      });
      created.products.push(made.id);
      productIds.set(src.id, made.id);
    }
    for (const src of doc.products) {
      if (src.child_product_id) await deps.registry.products.update(productIds.get(src.id)!, { child_product_id: productIds.get(src.child_product_id)! });
    }
    report.products = doc.products.length;
    for (const d of p.devices) {
      // No secret given: the registry generates one; it is answered here once.
      const { device, secret } = await deps.registry.devices.create({ ...d, product_id: productIds.get(d.product_id)! });
      created.devices.push(device.id);
      report.devices.push({ id: device.id, secret });
    }
    for (const r of doc.rules) {
      const rule = await deps.rules.create({ ...r, product_id: r.product_id ? (productIds.get(r.product_id) ?? r.product_id) : r.product_id });
      created.rules.push(rule.id);
    }
    report.rules = doc.rules.length;
    if (doc.flows && deps.flows) {
      await deps.flows.deploy(mapFlows(doc.flows, productIds));
      report.flows = doc.flows.length;
    }
    deps.log.info({ products: report.products, devices: report.devices.length, rules: report.rules, plugins: report.plugins.length, flows: report.flows }, 'project imported');
    return report;
  } catch (err) {
    await undo(deps, created);
    if (isFluxError(err)) throw err;
    throw badRequest(`the import failed and was undone: ${(err as Error).message}`);
  }
}

/** Removes what a failed import created, newest first; what cannot be removed is logged. */
async function undo(deps: ProjectDeps, created: { plugins: string[]; products: string[]; devices: string[]; rules: string[] }): Promise<void> {
  const steps: [string, string[], (id: string) => Promise<void>][] = [
    ['rule', created.rules, (id) => deps.rules.delete(id)],
    ['device', [...created.devices].reverse(), (id) => deps.registry.devices.delete(id)],
    ['product', [...created.products].reverse(), (id) => deps.registry.products.delete(id)],
    ['plugin', created.plugins, (id) => deps.plugins.remove(id)],
  ];
  for (const [what, ids, remove] of steps) {
    for (const id of ids) await remove(id).catch((err: Error) => deps.log.error({ err, [what]: id }, `import undo: could not remove ${what} ${id}`));
  }
}
