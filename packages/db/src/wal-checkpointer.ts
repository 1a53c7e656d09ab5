/**
 * The embedded database's checkpoint thread. The main connection has automatic checkpoints
 * off (connect.ts), because SQLite runs them inside the COMMIT that crosses the limit, on the
 * thread that relays every SSH session: after a large import that was a stall of hundreds
 * of milliseconds. This thread has a connection of its own and copies the WAL into the
 * database file when asked. PASSIVE only: it never waits for, or blocks, the main
 * connection's readers and writer (FULL, RESTART and TRUNCATE take the write lock, and the
 * main connection's busy timeout would then sleep on the event loop).
 */
import { parentPort, workerData } from 'node:worker_threads';
import SQLite from 'better-sqlite3';

export type CheckpointerRequest = 'checkpoint' | 'close';
/** `log`: frames in the WAL; `checkpointed`: how many of them are now in the database file. */
export interface CheckpointerReply {
  busy: number;
  log: number;
  checkpointed: number;
}

const { file } = workerData as { file: string };
const database = new SQLite(file, { fileMustExist: true });
database.pragma('synchronous = NORMAL');

parentPort?.on('message', (request: CheckpointerRequest) => {
  if (request === 'close') {
    // Not the last connection (the main one is still open), so closing does not checkpoint.
    database.close();
    parentPort?.close();
    return;
  }
  const [result] = database.pragma('wal_checkpoint(PASSIVE)') as CheckpointerReply[];
  parentPort?.postMessage(result satisfies CheckpointerReply | undefined);
});
