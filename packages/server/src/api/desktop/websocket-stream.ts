import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/**
 * The WebSocket's binary frames as a byte stream, for the RFB proxy. Destroying the stream
 * leaves the socket open: the route closes it with the session's end reason.
 */
export function webSocketStream(socket: WebSocket): Duplex {
  const stream = new Duplex({
    read() {
      if (socket.isPaused) socket.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (socket.readyState !== socket.OPEN) return callback(new Error('The browser closed the desktop.'));
      socket.send(chunk, { binary: true }, (error) => callback(error ?? null));
    },
    final(callback) {
      callback();
    },
    // The socket reads again once the session is done with the stream: a socket left paused
    // never reads the browser's answer to the close, so the close waits for ws's 30 s timeout
    // and holds the server's stop that long (issue 21).
    destroy(error, callback) {
      if (socket.isPaused) socket.resume();
      callback(error);
    },
  });
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    // What the browser still sends after the session ended (noVNC's update requests) is dropped.
    if (stream.destroyed) return;
    // A text frame after `started` has no place in the RFB stream.
    if (!isBinary) return stream.destroy(new Error('A text message arrived inside the RFB stream.'));
    if (!stream.push(data)) socket.pause();
  });
  socket.on('close', () => {
    stream.push(null);
    stream.destroy();
  });
  stream.on('error', () => undefined);
  return stream;
}
