/**
 * Puts polled values into the durable uplink log (runtime/uplink-log) and onto the device bus.
 *
 * The log commits one event-loop turn's appends together (one write), and a thousand units answer
 * in many turns: values answered within `windowMs` are appended together. A poll has no sender
 * waiting for an acknowledgement, so, like an MQTT QoS 0 publish (runtime/broker), it goes on the
 * bus with its log position at once rather than after an fdatasync, whose latency would otherwise
 * be the values' jitter, and its group is synced later (runtime/uplink-log/log.ts SYNC_EVERY_MS).
 * One the log refuses is dropped (the journal counts it) and read again at the next poll.
 */
import type { UplinkMessage } from '../bus/index.ts';
import type { UplinkJournal } from '../uplink-log/index.ts';

export interface PollAppender {
  push(up: UplinkMessage): void;
  /** Appends what waits now (before the log closes). */
  flush(): void;
}

const appended = () => {};

export function createPollAppender(journal: Pick<UplinkJournal, 'append' | 'emit'>, windowMs: number): PollAppender {
  let pending: UplinkMessage[] = [];
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = pending;
    pending = [];
    for (const up of batch) {
      journal.append(up, appended, false);
      if (up.logSeq !== undefined) journal.emit(up);
    }
  };
  return {
    push(up) {
      pending.push(up);
      timer ??= setTimeout(flush, windowMs);
    },
    flush,
  };
}
