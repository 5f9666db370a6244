/**
 * Which plugin build a `flux decode` / `flux encode` node was configured with travels in the flow:
 * the editor records `pluginVersion` and `pluginSha256` beside `plugin` when the dialog is saved
 * (nodes/flux-decode.html), and `flux export` stamps nodes that lack them (runtime/project).
 * On deploy the node checks this instance: a plugin that is not installed is a red status and an
 * error naming the plugin and version (the node fails every message); other bytes than the flow's
 * are a yellow status and a warning (the node runs the installed build).
 */
import type { Node, NodeAPI } from './red.ts';
import { countedText } from './red.ts';
import type { FluxNodeHandle } from '../runtime/flow-engine/index.ts';
import { isFluxError } from '../runtime/errors/index.ts';

export interface PluginRef {
  plugin?: string;
  pluginVersion?: string | number;
  pluginSha256?: string;
}

export type Provenance = { state: 'ok' } | { state: 'missing' | 'differs'; text: string };

/** Checks the node's plugin against this instance; shows and reports what is wrong, answers the state. */
export async function checkPlugin(RED: NodeAPI, node: Node, flux: FluxNodeHandle, ref: PluginRef, type: string): Promise<Provenance> {
  const id = ref.plugin?.trim();
  if (!id) return { state: 'ok' };
  const version = ref.pluginVersion ? String(ref.pluginVersion) : '?';
  const sha = typeof ref.pluginSha256 === 'string' ? ref.pluginSha256 : '';
  let info;
  try {
    info = await flux.plugins.get(id);
  } catch (err) {
    if (!isFluxError(err) || err.status !== 404) throw err;
    const text = countedText(RED, 'flux-decode.provenance.missing', { id, version });
    node.status({ fill: 'red', shape: 'ring', text });
    node.error(`${type}: plugin '${id}' v${version}${sha ? ` (sha256 ${sha.slice(0, 12)}…)` : ''} is not installed on this instance: install it (console Plugins, PUT /api/plugins/${id} or flux import) and deploy again`);
    return { state: 'missing', text };
  }
  const active = info.versions.find((v) => v.active);
  if (!sha || active?.sha256 === sha) return { state: 'ok' };
  const text = countedText(RED, 'flux-decode.provenance.differs', { id, version, active: active?.version ?? '-' });
  node.status({ fill: 'yellow', shape: 'ring', text });
  node.warn(`${type}: plugin '${id}' runs v${active?.version ?? '-'} (sha256 ${active?.sha256.slice(0, 12) ?? '-'}…), the flow was saved with v${version} (sha256 ${sha.slice(0, 12)}…)`);
  return { state: 'differs', text };
}
