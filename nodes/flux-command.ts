/**
 * `flux command`: sends a command down to a device (docs/architecture.md "The downlink path"), the same way as
 * `POST /api/devices/{id}/commands`: bytes from the product plugin's `encode` (JSON without one),
 * over the device's TCP connection or MQTT `/{productKey}/{deviceId}/command` (QoS 1).
 * Input: the device from the node's setting, `msg.device.id` or `msg.deviceId`; the command from the
 * setting, `msg.command` or `msg.payload.command`; params from `msg.params`, `msg.payload.params`,
 * or (when the command is set on the node) `msg.payload`. Output: `msg.payload` = the result
 * `{ status: delivered | queued | offline, id, transport, … }`.
 */
import type { NodeAPI, Node, NodeDef, NodeMessage } from './red.ts';
import { countedText, fluxOf } from './red.ts';

interface CommandDef extends NodeDef {
  device?: string;
  command?: string;
}

function pick(def: CommandDef, msg: NodeMessage): { deviceId?: string; command?: string; params: unknown } {
  const payload = (msg.payload && typeof msg.payload === 'object' && !Buffer.isBuffer(msg.payload) ? msg.payload : {}) as Record<string, unknown>;
  const device = msg.device as { id?: unknown } | undefined;
  const deviceId = def.device?.trim() || (typeof device?.id === 'string' ? device.id : undefined) || (typeof msg.deviceId === 'string' ? msg.deviceId : undefined);
  const command = def.command?.trim() || (typeof msg.command === 'string' ? msg.command : undefined) || (typeof payload.command === 'string' ? payload.command : undefined);
  const params = msg.params ?? payload.params ?? (def.command?.trim() ? msg.payload : undefined) ?? {};
  return { deviceId, command, params };
}

export default function register(RED: NodeAPI): void {
  function FluxCommand(this: Node, def: CommandDef): void {
    RED.nodes.createNode(this, def);
    const flux = fluxOf(RED);
    const node = this;
    let sent = 0;
    node.on('input', async (msg, send, done) => {
      const { deviceId, command, params } = pick(def, msg);
      if (!deviceId) return done(new Error('flux command: no device (set it on the node, or send msg.device.id)'));
      if (!command) return done(new Error('flux command: no command (set it on the node, or send msg.command)'));
      const downlink = flux.downlink;
      try {
        const result = await downlink.send(deviceId, command, params);
        sent++;
        node.status(result.status === 'offline' ? { fill: 'yellow', shape: 'ring', text: countedText(RED, 'flux-command.status.offline', { device: deviceId }) } : { fill: 'green', shape: 'dot', text: countedText(RED, 'flux-command.status.sent', { count: sent, status: result.status }) });
        send({ ...msg, payload: result, command: { device_id: deviceId, command, params } });
        done();
      } catch (err) {
        node.status({ fill: 'red', shape: 'ring', text: (err as Error).message.slice(0, 40) });
        done(err as Error);
      }
    });
  }
  RED.nodes.registerType('flux command', FluxCommand);
}
