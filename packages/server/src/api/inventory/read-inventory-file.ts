import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { GatehouseError, InternalError } from '@gatehouse/core';
import type { ImportRow, InventoryFile, InventoryFileMessage } from './inventory-file.js';

/** The worker thread's module beside this one; from the TypeScript sources (unit tests), the built one. */
function workerUrl(): URL {
  const sibling = new URL('./inventory-file-worker.js', import.meta.url);
  return existsSync(sibling) ? sibling : new URL('../../../dist/api/inventory/inventory-file-worker.js', import.meta.url);
}

/**
 * The reader thread, given the file's bytes: moved when they own their memory and it may
 * be moved, else copied (Node.js 22 and later refuse to move a Buffer's memory that it
 * marked untransferable, such as memory it may pool, with a DataCloneError).
 */
function startReader(file: InventoryFile): Worker {
  const { bytes } = file;
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  try {
    return new Worker(workerUrl(), {
      workerData: { format: file.format, bytes: own } satisfies InventoryFile,
      transferList: [own.buffer as ArrayBuffer],
    });
  } catch (error) {
    if (!(error instanceof Error) || error.name !== 'DataCloneError') throw error;
    return new Worker(workerUrl(), { workerData: { format: file.format, bytes: new Uint8Array(bytes) } satisfies InventoryFile });
  }
}

/**
 * parseInventoryFile on a worker thread of its own: the main thread hands the bytes over
 * (moved, not copied, when they own their memory; decoding 100,000 rows is a stall of its
 * own) and takes the checked rows back, ROWS_PER_MESSAGE at a time, asking for each batch
 * after a turn of the event loop.
 */
export function readInventoryFile(file: InventoryFile): Promise<ImportRow[]> {
  return new Promise((resolve, reject) => {
    const rows: ImportRow[] = [];
    let settled = false;
    const worker = startReader(file);
    worker.on('message', (message: InventoryFileMessage) => {
      if ('rows' in message) {
        rows.push(...message.rows);
        // The next batch after a turn of the event loop.
        setImmediate(() => worker.postMessage('next'));
        return;
      }
      settled = true;
      void worker.terminate();
      if ('done' in message) resolve(rows);
      else reject(new GatehouseError(message.failure.code, message.failure.message, message.failure.issues));
    });
    worker.on('error', (error) => {
      settled = true;
      reject(error);
    });
    worker.on('exit', (code) => {
      if (!settled) reject(new InternalError(`The inventory file reader thread stopped (exit code ${code}) before it finished.`));
    });
  });
}
