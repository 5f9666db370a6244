/**
 * The SQLite store's writer thread (runtime/storage/sqlite.ts): its own connection to the
 * time-series file runs every write (series, points, events, retention deletes), one call at a
 * time in arrival order. A commit rewrites every B-tree page the batch touched and WAL checkpoints
 * run in the committing connection; on the main thread that was the largest single cost of the
 * uplink path (docs/benchmarks.md "Session 7: the young generation, SQLite's writes and thread hops").
 */
import { parentPort, workerData } from 'node:worker_threads';
import { sqliteConnection, type WriteCall, type WriteReply } from './sqlite.ts';
import { DataError } from './types.ts';

const port = parentPort!;
const db = sqliteConnection((workerData as { file: string }).file);
db.open();

port.on('message', (call: WriteCall) => {
  let reply: WriteReply;
  try {
    const value = call.op === 'close' ? (db.close(), 0) : db[call.op](...(call.args as [never, never, never]));
    reply = { id: call.id, ok: true, value };
  } catch (err) {
    reply = { id: call.id, ok: false, message: (err as Error).message, data: err instanceof DataError };
  }
  port.postMessage(reply);
});
