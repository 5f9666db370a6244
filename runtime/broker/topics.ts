/**
 * Device topics and the device ACL (docs/broker.md "MQTT"): a device publishes only under
 * `/{productKey}/{deviceId}/…`, never on its command topic or below it, and subscribes only to
 * `/{productKey}/{deviceId}/command/#` (or a narrower filter inside it).
 */
import type { UplinkMessage } from '../bus/index.ts';

export const devicePrefix = (productKey: string, deviceId: string) => `/${productKey}/${deviceId}/`;
export const commandTopic = (productKey: string, deviceId: string) => `/${productKey}/${deviceId}/command`;

export function mayPublish(productKey: string, deviceId: string, topic: string): boolean {
  const prefix = devicePrefix(productKey, deviceId);
  if (topic.length <= prefix.length || !topic.startsWith(prefix)) return false;
  // Commands flow from the platform to the device only. Published by the device itself, they were
  // queued for each of its offline persistent sessions (`{deviceId}/…` client ids, clean=false), in
  // memory and without a bound: one device could grow the broker's heap at will.
  // checked in place: this runs for every uplink
  if (!topic.startsWith('command', prefix.length)) return true;
  const end = prefix.length + 'command'.length;
  return !(topic.length === end || topic.charCodeAt(end) === 47); // '/'
}

export function maySubscribe(productKey: string, deviceId: string, filter: string): boolean {
  const base = commandTopic(productKey, deviceId);
  if (filter === base || filter === `${base}/#`) return true;
  if (!filter.startsWith(`${base}/`)) return false;
  // inside command/: any filter whose wildcards stay below command/ is a subset of command/#
  return !filter.slice(base.length + 1).includes('#') || filter.endsWith('/#');
}

/** `properties/report` and `event/{eventId}` under the device prefix become bus uplinks; other topics stay MQTT-only. */
export function uplinkKind(productKey: string, deviceId: string, topic: string): { type: UplinkMessage['type']; eventId?: string } | null {
  const rest = topic.slice(devicePrefix(productKey, deviceId).length);
  if (rest === 'properties/report') return { type: 'properties' };
  if (rest.startsWith('event/')) {
    const eventId = rest.slice(6);
    if (eventId.length > 0 && !eventId.includes('/')) return { type: 'event', eventId };
  }
  return null;
}

/** MQTT topic filter matching (`+` one level, `#` the rest) [MQTT-4.7]. */
export function filterMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
