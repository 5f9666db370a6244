/**
 * How the broker authenticates a CONNECT (docs/broker.md "MQTT"), and what it keeps about each
 * connection. Devices: username = device id, password = device secret (the stamp of the secret is
 * kept for revocations, revoke.ts); platform clients: any non-device username and the admin token.
 * A session belongs to one device (sessions.ts). Refusals are counted and logged with a reason.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { AedesOptions, Client } from 'aedes';
import type { Counter } from '../metrics/index.ts';
import type { Logger } from '../log/index.ts';
import type { DeviceAccess, DeviceIdentity } from '../registry/index.ts';
import { brokerAssignedClientId, connectWill } from '../patches/index.ts';
import type { SharedBrokerState } from './shared-state.ts';
import { clientIdTooLong, deviceNamedBy, deviceSessionRefusal, identifierRejected } from './sessions.ts';
import { mayPublish } from './topics.ts';

/**
 * What the broker keeps about one connection, on the connection itself: one small object and one
 * shared 'close' handler instead of WeakMap entries, closures and `once` wrappers per connection
 * (per-connection memory is measured: docs/broker.md "Measurements").
 */
export class ConnState {
  /** the authenticated device, 'platform' for a platform client, undefined before CONNECT */
  identity: DeviceIdentity | 'platform' | undefined = undefined;
  /** the stamp of the secret a device authenticated with (a reference to the cached one, no copy) */
  stamp: string | undefined = undefined;
  /** the aedes client, once the device's session is up (for liveByDevice) */
  client: Client | undefined = undefined;
  /** presence release, once the device's session is up */
  release: ((reason: string) => void) | undefined = undefined;
  closeReason: string | undefined = undefined;
  /** a device's new filters authorised in this turn, not yet in aedes' `client.subscriptions` (index.ts) */
  subscribing: Set<string> | undefined = undefined;
}
export const kConn = Symbol('flux.brokerConn');
export type BrokerConn = Duplex & { [kConn]?: ConnState };
export const stateOf = (client: Client): ConnState | undefined => (client.conn as BrokerConn | undefined)?.[kConn];

const notAuthorized = () => Object.assign(new Error('not authorized'), { returnCode: 5 as const });
export const unavailable = (why: string) => Object.assign(new Error(why), { returnCode: 3 as const });

function tokenMatches(given: Buffer | undefined, token: string): boolean {
  if (!given) return false;
  const want = Buffer.from(token, 'utf8');
  return given.length === want.length && timingSafeEqual(given, want);
}

export interface AuthenticatorDeps {
  registry: { devices: { credential(id: string, secret: string): Promise<DeviceAccess | null>; identity(id: string): Promise<DeviceIdentity | null> } };
  adminToken: string;
  log: Logger;
  /** flux_mqtt_refused_total */
  refused: Counter;
  /** cluster mode: no new connection while the shared state is unreachable */
  shared?: SharedBrokerState;
  /** open connections now */
  open(): number;
  maxConnections: number;
}

/** aedes' `authenticate` option. */
export function connectAuthenticator(deps: AuthenticatorDeps): NonNullable<AedesOptions['authenticate']> {
  return (client, username, password, done) => {
    if (deps.shared && !deps.shared.available()) {
      deps.refused.inc({ reason: 'cluster_unavailable' });
      deps.log.warn({ clientId: client.id }, 'MQTT connect refused: the shared broker state (Redis) is unreachable');
      return done(unavailable('shared broker state unreachable'), false);
    }
    if (deps.open() > deps.maxConnections) {
      deps.refused.inc({ reason: 'connection_limit' });
      deps.log.warn({ clientId: client.id, open: deps.open(), maxConnections: deps.maxConnections }, 'MQTT connect refused: connection limit reached');
      return done(unavailable('connection limit reached'), false);
    }
    const tooLong = clientIdTooLong(client.id);
    if (tooLong) {
      deps.refused.inc({ reason: 'client_id' });
      deps.log.warn({ clientId: client.id.slice(0, 80), username, reason: tooLong }, 'MQTT connect refused');
      return done(identifierRejected(tooLong), false);
    }
    if (!username) {
      deps.refused.inc({ reason: 'not_authorized' });
      deps.log.warn({ clientId: client.id, reason: 'no username' }, 'MQTT connect refused');
      return done(notAuthorized(), false);
    }
    deps.registry.devices.credential(username, password?.toString('utf8') ?? '').then(
      (access) => {
        const identity = access?.identity;
        if (identity && identity.device.enabled) {
          // a session belongs to one device (sessions.ts): checked after the secret, so a
          // wrong client id does not tell a stranger whether the device exists
          const refusal = deviceSessionRefusal(identity.device.id, client.id, brokerAssignedClientId(client));
          if (refusal) {
            deps.refused.inc({ reason: 'client_id' });
            deps.log.warn({ clientId: client.id, username, reason: refusal }, 'MQTT connect refused');
            return done(identifierRejected(refusal), false);
          }
          // A will is published once the connection is gone. In a cluster, the node that publishes the
          // wills of a dead node has no client for them, so the topic ACL cannot wait until then.
          const will = connectWill(client);
          if (will && !mayPublish(identity.product.key, identity.device.id, will.topic)) {
            deps.refused.inc({ reason: 'acl_will' });
            deps.log.warn({ clientId: client.id, username, topic: will.topic, reason: 'will topic outside the device topic prefix' }, 'MQTT connect refused');
            return done(notAuthorized(), false);
          }
          const st = stateOf(client);
          if (st) {
            st.identity = identity;
            st.stamp = access!.stamp;
          }
          return done(null, true);
        }
        if (!identity && tokenMatches(password, deps.adminToken)) {
          // a device id with the admin token is still a device: it must use its own secret
          return deps.registry.devices.identity(username).then(async (asDevice) => {
            if (asDevice) {
              deps.refused.inc({ reason: 'not_authorized' });
              deps.log.warn({ clientId: client.id, username, reason: 'device id with a non-device password' }, 'MQTT connect refused');
              return done(notAuthorized(), false);
            }
            // a platform client must not take over (or disconnect) a device's session
            const named = deviceNamedBy(client.id);
            if (named && (await deps.registry.devices.identity(named))) {
              deps.refused.inc({ reason: 'client_id' });
              const why = `client id '${client.id}' belongs to device ${named}`;
              deps.log.warn({ clientId: client.id, username, reason: why }, 'MQTT connect refused');
              return done(identifierRejected(why), false);
            }
            const st = stateOf(client);
            if (st) st.identity = 'platform';
            done(null, true);
          });
        }
        deps.refused.inc({ reason: 'not_authorized' });
        deps.log.warn({ clientId: client.id, username, reason: identity ? 'device disabled' : 'unknown device or wrong secret' }, 'MQTT connect refused');
        done(notAuthorized(), false);
      },
    ).catch((err) => {
      deps.log.error({ err, username }, 'MQTT authentication failed');
      done(unavailable('server unavailable'), false);
    });
  };
}
