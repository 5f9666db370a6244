/**
 * @module storage — time series (docs/storage.md, FLUX_TS_URL): one store interface with SQLite,
 * MySQL/MariaDB, PostgreSQL and TDengine backends, the batched write path with its durable on-disk
 * buffer, thing-model checks, queries and per-product retention. The module registers itself as the
 * `storage` service; its health key is `timeseries_db`.
 */
export * from './types.ts';
export { createStore } from './store.ts';
export { sqliteDriver } from './sqlite.ts';
export { createStorageModule, type Storage, type StorageModule, type StorageModuleOptions, type IngestResult } from './service.ts';
export { StoreWriter, type WriterOptions, type WriterStats } from './writer.ts';
export { DiskBuffer } from './buffer.ts';
export { policyOf, coerce, toPoints, type ProductPolicy, type StandardMessage, type PropertyType } from './model.ts';
export { parseTelemetryQuery, parseTime, parseInterval, parseAggs, type TelemetryQuery, type TelemetryParams } from './query.ts';
