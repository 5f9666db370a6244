/**
 * How much a device may leave retained in the broker (docs/broker.md "Limits"): aedes keeps every
 * retained message until it is cleared, one per topic, and a device has as many topics under its
 * prefix as it likes, so without a bound one device could fill the broker's heap with them.
 */

/** distinct retained topics per device */
export const MAX_RETAINED_TOPICS = 16;
/** bytes of retained payload per device, all its topics together */
export const MAX_RETAINED_BYTES = 64 * 1024;

export interface RetainedQuota {
  /** Records a retained publish of the device; answers why it is refused, or undefined. An empty payload clears the topic. */
  admit(deviceId: string, topic: string, bytes: number): string | undefined;
}

/** Per device: its retained topics and their payload sizes, as this broker saw them. */
export function retainedQuota(): RetainedQuota {
  const byDevice = new Map<string, Map<string, number>>();
  return {
    admit(deviceId, topic, bytes) {
      let topics = byDevice.get(deviceId);
      if (bytes === 0) {
        topics?.delete(topic);
        if (topics?.size === 0) byDevice.delete(deviceId);
        return undefined;
      }
      topics ??= new Map();
      let total = bytes;
      for (const [t, n] of topics) if (t !== topic) total += n;
      const count = topics.size + (topics.has(topic) ? 0 : 1);
      if (count > MAX_RETAINED_TOPICS) return `a device keeps at most ${MAX_RETAINED_TOPICS} retained topics (clear one with an empty retained message)`;
      if (total > MAX_RETAINED_BYTES) return `a device keeps at most ${MAX_RETAINED_BYTES} bytes of retained messages`;
      topics.set(topic, bytes);
      byDevice.set(deviceId, topics);
      return undefined;
    },
  };
}
