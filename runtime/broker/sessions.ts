/**
 * Who an MQTT session belongs to (docs/broker.md "Sessions belong to devices"). A device's client id
 * is its device id, or its device id, `/` and anything (`sensor_1/backup`, `mosquitto_pub -I sensor_1/`).
 * `/` cannot occur in a device id, so every client id names at most one device: a device can neither
 * take over another device's session (its subscriptions and queued messages) nor disconnect it with
 * a session takeover. A client id the broker assigns (an empty one in CONNECT) is random and
 * belongs to that connection alone. Platform clients may use any client id that names no device.
 */
import { DEVICE_ID_PATTERN } from '../registry/index.ts';

/** longest client id accepted (MQTT 3.1.1 servers must accept 23; FLUX accepts up to this) */
export const MAX_CLIENT_ID_LENGTH = 128;

const SEPARATOR = '/';
const DEVICE_ID_RE = new RegExp(DEVICE_ID_PATTERN);

/** CONNACK 3.1.1 return code 2 "identifier rejected" (MQTT 5: 0x85 "Client Identifier not valid") */
export const identifierRejected = (why: string) => Object.assign(new Error(why), { returnCode: 2 as const });

const clip = (s: string) => (s.length > 80 ? `${s.slice(0, 80)}…` : s);

/** Why a client id is refused whatever the login, or undefined: only its length. */
export function clientIdTooLong(clientId: string): string | undefined {
  if (clientId.length > MAX_CLIENT_ID_LENGTH) return `client id of ${clientId.length} characters (at most ${MAX_CLIENT_ID_LENGTH})`;
  return undefined;
}

/** Why device `deviceId` may not use `clientId`, or undefined when it may. `assigned`: the broker chose the id. */
export function deviceSessionRefusal(deviceId: string, clientId: string, assigned: boolean): string | undefined {
  if (assigned) return undefined;
  if (clientId === deviceId) return undefined;
  if (clientId.length > deviceId.length + 1 && clientId.startsWith(deviceId) && clientId[deviceId.length] === SEPARATOR) return undefined;
  return `client id '${clip(clientId)}' is not device ${deviceId}'s: use '${deviceId}' or '${deviceId}${SEPARATOR}<anything>'`;
}

/** The device a client id would belong to (the part before the first `/`), when it has a device id's form. */
export function deviceNamedBy(clientId: string): string | undefined {
  const at = clientId.indexOf(SEPARATOR);
  const head = at < 0 ? clientId : clientId.slice(0, at);
  return DEVICE_ID_RE.test(head) ? head : undefined;
}
