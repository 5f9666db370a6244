/**
 * The SQLite store's checkpointer thread, started by its writer thread (runtime/storage/sqlite-writer.ts).
 * With SQLite's automatic checkpoints, every ~1,000 WAL pages one commit also copied the WAL into the
 * database file and synced it, and the batches behind it waited: commit p90 19–22 ms at ~30,000 points
 * a second, against 4–6 ms this way (docs/benchmarks.md "SQLite checkpoints off the
 * commit path"). Here a connection of its own copies what is committed every `everyMs`
 * (PASSIVE: never blocks the writer), and once the WAL holds `restartFrames` pages, all copied, it
 * rewinds it (RESTART: waits up to `busyMs` for readers and the writer, then tries again later).
 * When writes come too fast for a rewind, the writer checkpoints itself past twice that mark.
 */
import { DatabaseSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';

export interface CheckpointerOptions {
  file: string;
  everyMs: number;
  restartFrames: number;
  busyMs: number;
}

const opts = workerData as CheckpointerOptions;
const db = new DatabaseSync(opts.file);
db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(opts.busyMs))}`);
const passive = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const restart = db.prepare('PRAGMA wal_checkpoint(RESTART)');

const timer = setInterval(() => {
  try {
    const r = passive.get() as { busy: number; log: number; checkpointed: number };
    if (r.log >= opts.restartFrames && r.checkpointed === r.log) restart.get();
  } catch {
    // busy or locked: the next round tries again
  }
}, opts.everyMs);

parentPort!.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort!.postMessage('closed');
});
