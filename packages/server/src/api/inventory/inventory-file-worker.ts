/**
 * The inventory import's worker thread: parses and checks a whole file (seconds of CSV or
 * JSON parsing and zod validation for 100,000 rows) off the main thread, which relays every
 * SSH session, and sends the rows back one batch per request of the main thread: a port
 * delivers every message already queued in one turn of the event loop, so batches sent
 * all at once would be deserialized in one long stall there.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { GatehouseError } from '@gatehouse/core';
import { parseInventoryFile, ROWS_PER_MESSAGE, type InventoryFile, type InventoryFileMessage } from './inventory-file.js';

const send = (message: InventoryFileMessage) => parentPort?.postMessage(message);
const { format, bytes } = workerData as InventoryFile;
try {
  const rows = parseInventoryFile(format, new TextDecoder().decode(bytes));
  let next = 0;
  const sendBatch = () => {
    if (next >= rows.length) return send({ done: true });
    send({ rows: rows.slice(next, next + ROWS_PER_MESSAGE) });
    next += ROWS_PER_MESSAGE;
  };
  parentPort?.on('message', sendBatch);
  sendBatch();
} catch (error) {
  // Anything else is a bug: the thread's error event makes it the request's 500.
  if (!(error instanceof GatehouseError)) throw error;
  send({ failure: { code: error.code, message: error.message, issues: error.issues } });
}
