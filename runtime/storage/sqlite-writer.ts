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
import type { FoldOptions } from './sqlite-recent.ts';
import { DataError } from './types.ts';

const port = parentPort!;
const options = workerData as { file: string; checkpoints: Omit<CheckpointerOptions, 'file'>; fold: FoldOptions; waiting: SharedArrayBuffer };
const waiting = new Int32Array(options.waiting);
const db = sqliteConnection(options.file, { fold: options.fold, published: (rows) => Atomics.store(waiting, 0, rows) });
db.open();

// Folding the recent points into ts_points (runtime/storage/sqlite-recent.ts): one unit of work per
// turn of this thread's event loop, so the calls that arrive meanwhile run in between.
let folding: NodeJS.Immediate | undefined;
const fold = () => {
  folding = undefined;
  if (db.foldStep(Date.now())) folding = setImmediate(fold);
};
const foldIfDue = () => {
  if (!folding && db.foldDue(Date.now())) folding = setImmediate(fold);
};
const foldTimer = setInterval(foldIfDue, Math.max(10, Math.floor(options.fold.everyMs / 4)));

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
  clearInterval(foldTimer);
  if (folding) clearImmediate(folding);
  db.foldAll();
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
  if (call.op !== 'close') foldIfDue();
});
