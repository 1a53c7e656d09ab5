import { performance } from 'node:perf_hooks';
import { setImmediate } from 'node:timers/promises';

/**
 * A pause to await between the steps of a long job on the main thread: once `sliceMs` of
 * work has gone by since the last pause, it yields to the event loop (setImmediate), so
 * timers, sockets and other requests run in between; otherwise it returns at once. A loop
 * of awaited SQLite queries needs it: better-sqlite3 answers synchronously, so its awaits
 * resolve as microtasks and never let the event loop turn.
 */
export function timeSlicer(sliceMs = 10): () => Promise<void> {
  let since = performance.now();
  return async () => {
    if (performance.now() - since < sliceMs) return;
    await setImmediate();
    since = performance.now();
  };
}
