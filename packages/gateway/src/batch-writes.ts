import type { Writable } from 'node:stream';

/**
 * Sends everything written to `socket` during one turn of the event loop in one `writev`.
 *
 * ssh2 writes each SSH packet to its socket as it encrypts it, and its node:crypto AEAD
 * ciphers (used since the native binding is not built) write each packet in three pieces:
 * the 4-byte length, the encrypted body and the 16-byte tag. With Nagle off (the gateway
 * sets `noDelay` so that keystrokes are not held back) every piece is its own `write`
 * system call and, on TCP, its own segment: a 64 KiB read relayed from one leg to the other
 * became six writes. Corked from the first write of a turn until `process.nextTick`, the
 * pieces of every packet encrypted in that turn leave together, as soon as the code that
 * wrote them returns: nothing waits for a timer, so an interactive session's echo is not delayed.
 * Applies once per socket.
 */
export function batchWrites(socket: Writable): void {
  if (batched.has(socket)) return;
  batched.add(socket);
  const write = socket.write.bind(socket);
  let corked = false;
  const flush = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = ((...args: Parameters<Writable['write']>): boolean => {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      process.nextTick(flush);
    }
    return (write as (...a: Parameters<Writable['write']>) => boolean)(...args);
  }) as Writable['write'];
}

const batched = new WeakSet<Writable>();
