/**
 * The SQLite store's writer thread (runtime/storage/sqlite.ts): its own connection to the
 * time-series file runs every write (series, points, events, retention deletes), one call at a
 * time in arrival order. A commit rewrites every B-tree page the batch touched and WAL checkpoints
 * run in the committing connection; on the main thread that was the largest single cost of the
 * uplink path (docs/benchmarks.md "Session 7: the young generation, SQLite's writes and thread hops").
 */
import { once } from 'node:events';
import { parentPort, Worker, workerData } from 'node:worker_threads';
import { sqliteConnection, type WriteCall, type WriteReply } from './sqlite.ts';
import type { CheckpointerOptions } from './sqlite-checkpointer.ts';
import { DataError } from './types.ts';

const port = parentPort!;
const options = workerData as { file: string; checkpoints: Omit<CheckpointerOptions, 'file'> };
const db = sqliteConnection(options.file);
db.open();

// Checkpoints in a thread of their own (runtime/storage/sqlite-checkpointer.ts). This connection
// still checkpoints past twice the checkpointer's mark, when writes come too fast for it to rewind
// the WAL between them, and as SQLite does by default if the thread fails: the WAL stays bounded.
const { restartFrames } = options.checkpoints;
db.autoCheckpoint(2 * restartFrames, restartFrames * 4096);
const checkpointer = new Worker(new URL('./sqlite-checkpointer.ts', import.meta.url), { workerData: { file: options.file, ...options.checkpoints } satisfies CheckpointerOptions, name: 'flux-sqlite-checkpoints' });
let checkpointing = true;
const fallBack = () => {
  if (!checkpointing) return;
  checkpointing = false;
  db.autoCheckpoint(1000);
};
checkpointer.on('error', fallBack);
checkpointer.on('exit', fallBack);

async function close(): Promise<number> {
  if (checkpointing) {
    checkpointer.postMessage('close');
    await once(checkpointer, 'message');
    checkpointing = false;
    await checkpointer.terminate();
  }
  db.close();
  return 0;
}

port.on('message', async (call: WriteCall) => {
  let reply: WriteReply;
  try {
    const value = call.op === 'close' ? await close() : db[call.op](...(call.args as [never, never, never]));
    reply = { id: call.id, ok: true, value };
  } catch (err) {
    reply = { id: call.id, ok: false, message: (err as Error).message, data: err instanceof DataError };
  }
  port.postMessage(reply);
});
