/**
 * The way back to a device (docs/broker.md "Downlink"): a command becomes bytes (the product
 * plugin's `encode` when the plugin host runs and the product has a plugin; JSON otherwise) and goes
 * to the device's TCP connection, or to `/{productKey}/{deviceId}/command` over MQTT (QoS 1).
 * Devices that FLUX polls (Modbus) get their commands from the poller instead (`fieldbus`).
 * The API, the `flux command` node and rule actions get it from the composition root.
 */
import { randomUUID } from 'node:crypto';
import type { FluxContext } from '../app/context.ts';
import type { DeviceIdentity } from '../registry/index.ts';
import { FluxError, notFound } from '../errors/index.ts';
import type { Broker } from '../broker/index.ts';
import type { TcpIngress } from './tcp.ts';

export interface CommandResult {
  /** delivered: written to a live connection; queued: kept for a persistent MQTT session; offline: nowhere to send it */
  status: 'delivered' | 'queued' | 'offline';
  /** the command's id (also inside the JSON command) */
  id: string;
  deviceId: string;
  transport?: 'mqtt' | 'tcp' | 'modbus';
  topic?: string;
  /** the bytes sent, as they went out (before any TCP framing) */
  bytes: number;
  encoding: 'plugin' | 'json' | 'modbus';
  /** set when the command went (or would go) through the device's gateway */
  gateway_id?: string;
  reason?: string;
  /** Modbus: the values written (or read) */
  values?: Record<string, number | boolean>;
}

/** A poller that owns some devices' commands (the Modbus master). */
export interface FieldbusCommands {
  handles(identity: DeviceIdentity): boolean;
  command(deviceId: string, command: string, params: unknown): Promise<CommandResult>;
}

export interface Downlink {
  /** Sends a command to the device, through the node of the cluster it is connected to. */
  send(deviceId: string, command: string, params?: unknown): Promise<CommandResult>;
  /** Sends it from this node, never through another (what a node runs for a command another forwarded). */
  sendHere(deviceId: string, command: string, params?: unknown): Promise<CommandResult>;
}

/** The nodes of a cluster that hold devices (runtime/cluster implements it on Redis). */
export interface RemoteCommands {
  /** the other node holding a connection of the device, when one does */
  holder(deviceId: string): Promise<string | undefined>;
  /** runs `sendHere` on that node; its answer, or its error as a FluxError with the same code and status */
  send(nodeId: string, deviceId: string, command: string, params: unknown): Promise<CommandResult>;
}

/** The ways out a downlink has; each is optional (an instance without the broker sends nothing over MQTT). */
export interface DownlinkRoutes {
  /** the plugin host's `encode` */
  plugins?: { encode(pluginId: string, command: unknown): Promise<Uint8Array | Buffer> | Uint8Array | Buffer };
  tcp?: TcpIngress;
  broker?: Broker;
  /** a poller that owns some devices' commands (the Modbus master) */
  fieldbus?: FieldbusCommands;
  /** cluster mode: a device held by no connection here goes through the node that holds it */
  remote?: { commands: RemoteCommands; isHere(deviceId: string): boolean };
}

export function createDownlink(ctx: FluxContext, routes: DownlinkRoutes): Downlink {
  const log = ctx.log.child({ module: 'downlink' });
  const { plugins, tcp, broker, fieldbus, remote } = routes;

  /** The bytes of a command, by the plugin of `via` (the device itself, or the gateway a child's command goes through). */
  async function encode(identity: DeviceIdentity, body: { id: string; command: string; params: unknown; ts: number }, via: DeviceIdentity = identity): Promise<{ bytes: Buffer; encoding: 'plugin' | 'json' }> {
    const pluginId = via.product.protocol_plugin_id;
    if (pluginId && plugins) {
      try {
        const out = await plugins.encode(pluginId, via === identity ? { device_id: identity.device.id, ...body } : { device_id: identity.device.id, gateway_id: via.device.id, ...body });
        return { bytes: Buffer.from(out), encoding: 'plugin' };
      } catch (err) {
        throw new FluxError('encode_failed', `plugin ${pluginId} could not encode command '${body.command}': ${(err as Error).message}`, 422);
      }
    }
    return { bytes: Buffer.from(JSON.stringify(body)), encoding: 'json' };
  }

  /**
   * A child without a connection of its own: the command goes through its gateway's connection, in
   * bytes of the gateway's plugin (`encode` gets `device_id` = the child and `gateway_id`). Over MQTT
   * it is published to `/{gatewayProduct}/{gatewayId}/command/{childId}`.
   */
  async function viaGateway(child: DeviceIdentity, gatewayId: string, body: { id: string; command: string; params: unknown; ts: number }, tcp: TcpIngress | undefined, broker: Broker | undefined): Promise<CommandResult> {
    const deviceId = child.device.id;
    const gateway = await ctx.registry.devices.identity(gatewayId);
    if (!gateway) return { id: body.id, deviceId, bytes: 0, encoding: 'json', status: 'offline', reason: `its gateway '${gatewayId}' is not registered` };
    if (!gateway.device.enabled) throw new FluxError('device_disabled', `the gateway '${gatewayId}' of device '${deviceId}' is disabled`, 409);
    const { bytes, encoding } = await encode(child, body, gateway);
    const base = { id: body.id, deviceId, bytes: bytes.length, encoding, gateway_id: gatewayId } as const;
    if (tcp?.write(gatewayId, bytes, encoding === 'json')) {
      log.info({ deviceId, gatewayId, command: body.command, id: body.id, transport: 'tcp' }, 'command delivered through the gateway');
      return { ...base, status: 'delivered', transport: 'tcp' };
    }
    if (!broker) return { ...base, status: 'offline', reason: 'the MQTT broker is not running' };
    const r = await broker.sendCommand(gateway, bytes, deviceId);
    log.info({ deviceId, gatewayId, command: body.command, id: body.id, status: r.status, transport: 'mqtt' }, `command ${r.status} through the gateway`);
    return r.status === 'offline' ? { ...base, ...r, reason: `through gateway '${gatewayId}': ${r.reason}` } : { ...base, ...r };
  }

  async function sendHere(deviceId: string, command: string, params: unknown = {}, identity?: DeviceIdentity | null): Promise<CommandResult> {
    identity ??= await ctx.registry.devices.identity(deviceId);
    if (!identity) throw notFound('device', deviceId);
    if (!identity.device.enabled) throw new FluxError('device_disabled', `device '${deviceId}' is disabled`, 409);
    if (fieldbus?.handles(identity)) return fieldbus.command(deviceId, command, params);
    const body = { id: randomUUID(), command, params, ts: Date.now() };
    const gatewayId = identity.device.gateway_id;
    if (gatewayId && !tcp?.isConnected(deviceId) && !broker?.isConnected(deviceId)) return viaGateway(identity, gatewayId, body, tcp, broker);
    const { bytes, encoding } = await encode(identity, body);
    const base = { id: body.id, deviceId, bytes: bytes.length, encoding } as const;

    // a plugin's encode makes whole frames; JSON is wrapped in the product's framing
    if (tcp?.write(deviceId, bytes, encoding === 'json')) {
      log.info({ deviceId, command, id: body.id, transport: 'tcp' }, 'command delivered');
      return { ...base, status: 'delivered', transport: 'tcp' };
    }
    if (!broker) return { ...base, status: 'offline', reason: 'the MQTT broker is not running' };
    const r = await broker.sendCommand(identity, bytes);
    log.info({ deviceId, command, id: body.id, status: r.status, transport: 'mqtt' }, `command ${r.status}`);
    return { ...base, ...r };
  }

  return {
    async send(deviceId, command, params = {}) {
      const identity = await ctx.registry.devices.identity(deviceId);
      if (!identity) throw notFound('device', deviceId);
      // Cluster: a device (or a gateway's child) connected to another node gets it through that node.
      // Modbus devices are polled, not connected: their commands stay with this node's master.
      if (remote && identity.device.enabled && !fieldbus?.handles(identity) && !remote.isHere(deviceId)) {
        const node = await remote.commands.holder(deviceId);
        if (node) {
          log.info({ deviceId, command, node }, 'command forwarded to the node the device is connected to');
          return remote.commands.send(node, deviceId, command, params);
        }
      }
      return sendHere(deviceId, command, params, identity);
    },
    sendHere: (deviceId, command, params) => sendHere(deviceId, command, params),
  };
}
