/**
 * @module broker — the embedded MQTT broker (aedes) on FLUX_MQTT_PORT.
 * Devices authenticate with username = device id, password = device secret (ARCHITECTURE §4
 * "Device access"); platform clients with any non-device username and the admin token.
 */
import net from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { Aedes, type Client } from 'aedes';
import { ConfigError } from '../errors/index.ts';
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import type { DeviceIdentity } from '../registry/index.ts';

export interface Broker extends FluxModule {
  readonly aedes: Aedes;
  /** the port actually listened on (FLUX_MQTT_PORT=0 picks one) */
  port(): number;
}

function tokenMatches(given: Buffer | undefined, token: string): boolean {
  if (!given) return false;
  const want = Buffer.from(token, 'utf8');
  return given.length === want.length && timingSafeEqual(given, want);
}

export function createBroker(ctx: FluxContext): Broker {
  const log = ctx.log.child({ module: 'broker' });
  const identities = new WeakMap<Client, DeviceIdentity | 'platform'>();
  let aedes: Aedes | undefined;
  let server: net.Server | undefined;
  let listeningPort = 0;

  return {
    name: 'broker',
    get aedes() {
      if (!aedes) throw new Error('broker not started');
      return aedes;
    },
    port: () => listeningPort,
    async start() {
      aedes = await Aedes.createBroker({
        authenticate(client, username, password, done) {
          if (!username) {
            log.warn({ clientId: client.id }, 'MQTT connect refused: no username');
            return done(Object.assign(new Error('not authorized'), { returnCode: 5 as const }), false);
          }
          ctx.registry.devices.authenticate(username, password?.toString('utf8') ?? '').then(
            (identity) => {
              if (identity && identity.device.enabled) {
                identities.set(client, identity);
                return done(null, true);
              }
              if (!identity && tokenMatches(password, ctx.adminToken)) {
                identities.set(client, 'platform');
                return done(null, true);
              }
              log.warn({ clientId: client.id, username, reason: identity ? 'device disabled' : 'unknown device or wrong secret' }, 'MQTT connect refused');
              done(Object.assign(new Error('not authorized'), { returnCode: 5 as const }), false);
            },
            (err) => {
              log.error({ err, username }, 'MQTT authentication failed');
              done(Object.assign(new Error('server unavailable'), { returnCode: 3 as const }), false);
            },
          );
        },
      });
      server = net.createServer(aedes.handle);
      await new Promise<void>((resolve, reject) => {
        server!.once('error', (err: NodeJS.ErrnoException) => {
          if (err.code === 'EADDRINUSE') reject(new ConfigError('FLUX_MQTT_PORT', `MQTT port ${ctx.settings.mqttPort} is in use; set FLUX_MQTT_PORT`));
          else if (err.code === 'EACCES') reject(new ConfigError('FLUX_MQTT_PORT', `MQTT port ${ctx.settings.mqttPort} needs privileges; set FLUX_MQTT_PORT`));
          else reject(err);
        });
        server!.listen(ctx.settings.mqttPort, ctx.settings.host, () => resolve());
      });
      listeningPort = (server.address() as net.AddressInfo).port;
      ctx.services.set('broker', this);
    },
    async stop() {
      const s = server;
      const a = aedes;
      server = undefined;
      aedes = undefined;
      ctx.services.delete('broker');
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
      if (a) await new Promise<void>((resolve) => a.close(() => resolve()));
    },
    health(): ComponentHealth {
      return { ok: Boolean(server?.listening), port: listeningPort, clients: aedes?.connectedClients ?? 0 };
    },
  };
}
