/**
 * @module ingress — device access besides the MQTT broker: raw TCP ingress with framing, online
 * presence shared by every transport, and the downlink service (ARCHITECTURE §4 "Device access").
 * The `ingress` module starts the TCP listeners and registers the `downlink` service.
 */
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import { createTcpIngress, type TcpIngress, type TcpIngressOptions } from './tcp.ts';
import { createDownlink, type FieldbusCommands } from './downlink.ts';

export { createFramer, encodeFrame, framePayload, parseFraming, FramingError, DEFAULT_MAX_FRAME, type Framing, type Framer } from './framing.ts';
export { createPresence, presenceOf, type Presence, type Transport } from './presence.ts';
export { createTcpIngress, tcpTransportOf, type TcpIngress, type TcpIngressOptions, type TcpTransport } from './tcp.ts';
export { createDownlink, type Downlink, type CommandResult, type FieldbusCommands } from './downlink.ts';

export interface Ingress extends FluxModule {
  readonly tcp: TcpIngress;
}

/**
 * The ingress module: TCP listeners of products and the `downlink` service. Start it after the broker.
 * `fieldbus` takes the commands of devices that FLUX polls (Modbus) instead of a connection of theirs.
 */
export function createIngress(ctx: FluxContext, opts: TcpIngressOptions = {}, fieldbus?: FieldbusCommands): Ingress {
  const tcp = createTcpIngress(ctx, opts);
  const downlink = createDownlink(ctx, fieldbus);
  return {
    name: 'ingress',
    tcp,
    async start() {
      ctx.services.set('downlink', downlink);
      await tcp.start();
    },
    async stop() {
      if (ctx.services.get('downlink') === downlink) ctx.services.delete('downlink');
      await tcp.stop();
    },
    health: (): ComponentHealth => tcp.health!() as ComponentHealth,
  };
}
