/**
 * @module ingress — device access besides the MQTT broker: raw TCP ingress with framing, online
 * presence shared by every transport, and the downlink (the way back to a device).
 * The `ingress` module starts the TCP listeners; its `downlink` goes to the API, nodes and rules.
 */
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import type { Broker } from '../broker/index.ts';
import { createTcpIngress, type TcpIngress, type TcpIngressOptions, type TcpPlugins } from './tcp.ts';
import { createDownlink, type Downlink, type DownlinkRoutes, type FieldbusCommands, type RemoteCommands } from './downlink.ts';
import type { Presence } from './presence.ts';

export { createFramer, encodeFrame, framePayload, parseFraming, FramingError, DEFAULT_MAX_FRAME, type Framing, type Framer } from '../framing/index.ts';
export { createPresence, type Presence, type SharedPresence, type Transport } from './presence.ts';
export { createTcpIngress, tcpTransportOf, type TcpIngress, type TcpIngressOptions, type TcpTransport, type TcpPlugins } from './tcp.ts';
export { createRevoker, revocationOf, type Revoker, type Revocation, type HeldConnection, type ConnectionHolder } from './revocation.ts';
export { createDownlink, type Downlink, type DownlinkRoutes, type CommandResult, type FieldbusCommands, type RemoteCommands } from './downlink.ts';

export interface Ingress extends FluxModule {
  readonly tcp: TcpIngress;
  readonly downlink: Downlink;
}

export interface IngressDeps {
  presence: Presence;
  /** the plugin host: framing and first-frame identification for TCP, `encode` for commands */
  plugins?: TcpPlugins & NonNullable<DownlinkRoutes['plugins']>;
  broker?: Broker;
  /** takes the commands of devices that FLUX polls (Modbus) instead of a connection of theirs */
  fieldbus?: FieldbusCommands;
  /** cluster mode: commands for devices connected to another node go through it (runtime/cluster) */
  remote?: RemoteCommands;
}

/** The ingress module: TCP listeners of products and the downlink. Start it after the broker. */
export function createIngress(ctx: FluxContext, deps: IngressDeps, opts: TcpIngressOptions = {}): Ingress {
  const tcp = createTcpIngress(ctx, deps.presence, deps.plugins, opts);
  const presence = deps.presence;
  const remote = deps.remote && { commands: deps.remote, isHere: (deviceId: string) => presence.isOnline(deviceId) };
  const downlink = createDownlink(ctx, { plugins: deps.plugins, tcp, broker: deps.broker, fieldbus: deps.fieldbus, remote });
  return {
    name: 'ingress',
    tcp,
    downlink,
    start: () => tcp.start(),
    stop: () => tcp.stop(),
    health: (): ComponentHealth => tcp.health!() as ComponentHealth,
  };
}
