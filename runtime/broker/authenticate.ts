/**
 * Who may connect to the broker (docs/broker.md "MQTT"): a device with its id and secret, on a
 * client id of its own (sessions.ts); a platform client with any other username, the admin token and
 * a client id that names no device. Refused while the shared broker state of a cluster is
 * unreachable and past the connection limit.
 */
import { timingSafeEqual } from 'node:crypto';
import type { AedesOptions, Client } from 'aedes';
import type { Counter } from 'prom-client';
import type { DeviceIdentity, DeviceRepository } from '../registry/index.ts';
import type { Logger } from '../log/index.ts';
import { brokerAssignedClientId } from '../patches/index.ts';
import type { SharedBrokerState } from './shared-state.ts';
import { clientIdTooLong, deviceNamedBy, deviceSessionRefusal, identifierRejected } from './sessions.ts';

const notAuthorized = () => Object.assign(new Error('not authorized'), { returnCode: 5 as const });
const unavailable = (why: string) => Object.assign(new Error(why), { returnCode: 3 as const });

function tokenMatches(given: Buffer | undefined, token: string): boolean {
  if (!given) return false;
  const want = Buffer.from(token, 'utf8');
  return given.length === want.length && timingSafeEqual(given, want);
}

export interface AuthenticatorDeps {
  devices: DeviceRepository;
  adminToken: string;
  /** cluster mode: connections are refused while it is unavailable */
  shared: SharedBrokerState | undefined;
  /** open connections now */
  open(): number;
  maxConnections: number;
  /** flux_mqtt_refused_total */
  refused: Counter;
  log: Logger;
  /** records who the connection is, once accepted */
  identify(client: Client, identity: DeviceIdentity | 'platform'): void;
}

/** aedes' `authenticate` hook. */
export function authenticator(d: AuthenticatorDeps): NonNullable<AedesOptions['authenticate']> {
  return (client, username, password, done) => {
    if (d.shared && !d.shared.available()) {
      d.refused.inc({ reason: 'cluster_unavailable' });
      d.log.warn({ clientId: client.id }, 'MQTT connect refused: the shared broker state (Redis) is unreachable');
      return done(unavailable('shared broker state unreachable'), false);
    }
    if (d.open() > d.maxConnections) {
      d.refused.inc({ reason: 'connection_limit' });
      d.log.warn({ clientId: client.id, open: d.open(), maxConnections: d.maxConnections }, 'MQTT connect refused: connection limit reached');
      return done(unavailable('connection limit reached'), false);
    }
    const tooLong = clientIdTooLong(client.id);
    if (tooLong) {
      d.refused.inc({ reason: 'client_id' });
      d.log.warn({ clientId: client.id.slice(0, 80), username, reason: tooLong }, 'MQTT connect refused');
      return done(identifierRejected(tooLong), false);
    }
    if (!username) {
      d.refused.inc({ reason: 'not_authorized' });
      d.log.warn({ clientId: client.id, reason: 'no username' }, 'MQTT connect refused');
      return done(notAuthorized(), false);
    }
    d.devices.authenticate(username, password?.toString('utf8') ?? '').then(
      (identity) => {
        if (identity && identity.device.enabled) {
          // a session belongs to one device (sessions.ts): checked after the secret, so a
          // wrong client id does not tell a stranger whether the device exists
          const refusal = deviceSessionRefusal(identity.device.id, client.id, brokerAssignedClientId(client));
          if (refusal) {
            d.refused.inc({ reason: 'client_id' });
            d.log.warn({ clientId: client.id, username, reason: refusal }, 'MQTT connect refused');
            return done(identifierRejected(refusal), false);
          }
          d.identify(client, identity);
          return done(null, true);
        }
        if (!identity && tokenMatches(password, d.adminToken)) {
          // a device id with the admin token is still a device: it must use its own secret
          return d.devices.identity(username).then(async (asDevice) => {
            if (asDevice) {
              d.refused.inc({ reason: 'not_authorized' });
              d.log.warn({ clientId: client.id, username, reason: 'device id with a non-device password' }, 'MQTT connect refused');
              return done(notAuthorized(), false);
            }
            // a platform client must not take over (or disconnect) a device's session
            const named = deviceNamedBy(client.id);
            if (named && (await d.devices.identity(named))) {
              d.refused.inc({ reason: 'client_id' });
              const why = `client id '${client.id}' belongs to device ${named}`;
              d.log.warn({ clientId: client.id, username, reason: why }, 'MQTT connect refused');
              return done(identifierRejected(why), false);
            }
            d.identify(client, 'platform');
            done(null, true);
          });
        }
        d.refused.inc({ reason: 'not_authorized' });
        d.log.warn({ clientId: client.id, username, reason: identity ? 'device disabled' : 'unknown device or wrong secret' }, 'MQTT connect refused');
        done(notAuthorized(), false);
      },
    ).catch((err) => {
      d.log.error({ err, username }, 'MQTT authentication failed');
      done(unavailable('server unavailable'), false);
    });
  };
}
