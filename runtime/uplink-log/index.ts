/**
 * @module uplink-log — the durable uplink log in the data dir: appended before an uplink is
 * acknowledged, processed in order, replayed after a crash, kept for raw-traffic queries within a
 * time and size budget (docs/storage.md "Uplink log").
 */
export { createUplinkLog, SYNC_EVERY_MS } from './log.ts';
export { LogRefusedError, type LogRefusal, type UplinkLog, type UplinkLogOptions, type UplinkLogStats, type FsyncPolicy, type AppendInput, type AppendCallback, type RawQuery } from './types.ts';
export { encodeRecord, decodeRecord, type LogRecord, type LogTransport, type LogType } from './record.ts';
export { createUplinkJournal, uplinkOfRecord, type UplinkJournal, type JournalDeps } from './journal.ts';
export { createUplinkLogModule, type UplinkLogModule } from './module.ts';
