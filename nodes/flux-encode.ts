/**
 * `flux encode`: a command through the product's protocol plugin (or the plugin chosen in the
 * node) into the bytes for the device. Input: `msg.payload` = `{ command, params }` (or a command
 * name with `msg.params`), or the node's fixed command. Output: `msg.payload` = the bytes,
 * `msg.command` = the command object, `msg.plugin` = `{ id }`. Failures go to the catch node.
 */
import type { NodeAPI, Node, NodeDef } from './red.ts';
import { countedText, fluxOf } from './red.ts';
import { registerPluginAdmin } from './flux-plugin-admin.ts';
import { productOf } from './plugin-msg.ts';
import { checkPlugin, type PluginRef } from './plugin-provenance.ts';

interface EncodeDef extends NodeDef, PluginRef {
  plugin?: string;
  /** a fixed command name; '' = from the message */
  command?: string;
}

export default function register(RED: NodeAPI): void {
  registerPluginAdmin(RED);
  function FluxEncode(this: Node, def: EncodeDef): void {
    RED.nodes.createNode(this, def);
    const flux = fluxOf(RED);
    const node = this;
    const fixedPlugin = def.plugin?.trim() || '';
    const fixedCommand = def.command?.trim() || '';
    checkPlugin(RED, node, flux, def, 'flux encode').catch((err: Error) => node.error(`flux encode: cannot check plugin '${fixedPlugin}': ${err.message}`));

    node.on('input', async (msg, send, done) => {
      try {
        const p = msg.payload as { command?: unknown; params?: unknown } | string | undefined;
        const command = fixedCommand || (typeof p === 'string' ? p : typeof p?.command === 'string' ? p.command : '');
        if (!command) throw new Error('flux encode: no command (msg.payload.command, a string msg.payload, or the node setting)');
        const params = (typeof p === 'object' && p && p.params !== undefined ? p.params : msg.params) ?? (fixedCommand && typeof p === 'object' && p ? p : {});
        let pluginId = fixedPlugin;
        if (!pluginId) {
          const product = await productOf(flux, msg);
          pluginId = product?.protocol_plugin_id ?? '';
          if (!pluginId) throw new Error("flux encode: the message's product has no protocol plugin (choose one in the node)");
        }
        const deviceId = (msg.device as { id?: string } | undefined)?.id;
        const body = { command, params, ...(deviceId ? { device_id: deviceId } : {}) };
        const bytes = await flux.plugins.encode(pluginId, body);
        node.status({ fill: 'green', shape: 'dot', text: countedText(RED, 'flux-encode.status.encoded', { command, count: bytes.length }) });
        send({ ...msg, payload: bytes, command: body, plugin: { id: pluginId } });
        done();
      } catch (err) {
        node.status({ fill: 'red', shape: 'ring', text: (err as Error).message.slice(0, 60) });
        done(err as Error);
      }
    });
  }
  RED.nodes.registerType('flux encode', FluxEncode);
}
