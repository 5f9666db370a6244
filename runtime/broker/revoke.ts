/**
 * Closing an MQTT connection whose device lost its access (runtime/ingress/revocation.ts): an MQTT 5
 * client gets a DISCONNECT with a reason code and a reason string before the socket closes (aedes'
 * `Client.disconnect`); MQTT 3.1.1 has no server DISCONNECT, so its socket just closes
 * [MQTT-3.14.0-1]. The presence release then records the reason as the device's offline reason.
 */
import type { Client } from 'aedes';
import type { HeldConnection, Revocation } from '../ingress/index.ts';
import type { Logger } from '../log/index.ts';

/** MQTT 5 DISCONNECT reason codes (MQTT 5.0 §3.14.2.1) */
export const NOT_AUTHORIZED = 0x87;
export const ADMINISTRATIVE_ACTION = 0x98;

/** A new secret makes the old one not authorized; a device disabled or deleted is an operator's action. */
export const reasonCodeOf = (reason: Revocation) => (reason === 'secret rotated' ? NOT_AUTHORIZED : ADMINISTRATIVE_ACTION);

type Disconnecting = Client & { disconnect(opts: { reasonCode: number; properties?: { reasonString?: string } }, done?: () => void): void };

/** The broker's view of a connection: the stamp it authenticated with and where its close reason goes. */
export function heldConnection(client: Client, st: { stamp: string | undefined; closeReason: string | undefined } | undefined, log: Logger): HeldConnection {
  return {
    stamp: st?.stamp,
    close(reason) {
      if (st) st.closeReason = reason;
      const c = client as Disconnecting;
      if (typeof c.disconnect === 'function') c.disconnect({ reasonCode: reasonCodeOf(reason), properties: { reasonString: reason } });
      else {
        log.warn('aedes has no Client.disconnect: closing the connection without a DISCONNECT');
        client.close();
      }
    },
  };
}
