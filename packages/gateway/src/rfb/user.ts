import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { GatehouseError } from '@gatehouse/core';
import { HandshakeReadError, HandshakeReader } from './handshake-reader.js';
import type { RfbServerInit } from './target.js';

/**
 * How the user side authenticates. `none`: the user signed in already (the console's
 * WebSocket). `vnc`: VNC authentication, whose response `check` verifies (a one-time token)
 * — and may do more before answering (open the device), since the answer is the one place
 * a viewer shows a reason: `check` runs before SecurityResult, and its failure message is
 * the SecurityResult reason.
 */
export type VncUserAuth =
  | { kind: 'none' }
  | {
      kind: 'vnc';
      /** `signal` aborts when the viewer hangs up meanwhile (what the check opened for it can be let go). */
      check(challenge: Buffer, response: Buffer, signal: AbortSignal): Promise<{ ok: true } | { ok: false; message: string }>;
    };

export type RfbVersion = '3.3' | '3.7' | '3.8';

/** The user side's handshake did not complete; `refused` when the check said no (it was told why). */
export class VncUserError extends GatehouseError {
  constructor(
    readonly kind: 'refused' | 'protocol' | 'timeout' | 'closed',
    message: string,
  ) {
    super(kind === 'refused' ? 'UNAUTHENTICATED' : 'BAD_REQUEST', message);
    this.name = 'VncUserError';
  }
}

/**
 * The gateway's side, as an RFB server, of the user's handshake: offers RFB 3.8 (accepts
 * 3.3, 3.7 and 3.8), one security type, and reads ClientInit. It stops before ServerInit,
 * which the caller sends once the device is connected (sendServerInit). A refused check is
 * answered with SecurityResult failed and its message (RFB 3.8), then the socket is closed.
 * When this throws after a successful check (the viewer left before ClientInit), whatever
 * the check opened is the caller's to close.
 */
export async function acceptVncUser(
  socket: Duplex,
  auth: VncUserAuth,
  options: { timeoutMs: number },
): Promise<{ version: RfbVersion; shared: boolean }> {
  const reader = new HandshakeReader(socket, options.timeoutMs);
  try {
    socket.write('RFB 003.008\n', 'latin1');
    const version = parseClientVersion(await reader.read(12));
    const type = auth.kind === 'vnc' ? 2 : 1;
    if (version === '3.3') {
      const word = Buffer.alloc(4);
      word.writeUInt32BE(type);
      socket.write(word);
    } else {
      socket.write(Buffer.of(1, type));
      const chosen = await reader.readU8();
      if (chosen !== type)
        throw new VncUserError('protocol', `The VNC viewer chose security type ${chosen}, which the gateway did not offer.`);
    }
    if (auth.kind === 'vnc') {
      const challenge = randomBytes(16);
      socket.write(challenge);
      const response = await reader.read(16);
      let answer: { ok: true } | { ok: false; message: string };
      const gone = new AbortController();
      const abort = () => gone.abort();
      socket.once('close', abort);
      try {
        answer = await auth.check(challenge, response, gone.signal);
      } catch (error) {
        // The viewer still hears that the gateway gave up, not just a closed connection.
        sendRfbFailure(socket, version, 'The gateway could not open the desktop. Try again, or ask an administrator to look at its log.');
        throw error;
      } finally {
        socket.off('close', abort);
      }
      if (!answer.ok) {
        sendRfbFailure(socket, version, answer.message);
        throw new VncUserError('refused', answer.message);
      }
    }
    if (auth.kind === 'vnc' || version === '3.8') socket.write(Buffer.alloc(4)); // SecurityResult OK
    const shared = (await reader.readU8()) !== 0;
    reader.release();
    return { version, shared };
  } catch (error) {
    reader.release();
    if (!socket.writableEnded) socket.destroy();
    if (error instanceof VncUserError) throw error;
    if (error instanceof HandshakeReadError)
      throw new VncUserError(
        error.kind,
        error.kind === 'timeout'
          ? 'The VNC viewer did not finish the handshake in time.'
          : 'The VNC viewer closed the connection during the handshake.',
      );
    throw error;
  }
}

function parseClientVersion(bytes: Buffer): RfbVersion {
  const match = /^RFB 003\.(\d{3})\n$/.exec(bytes.toString('latin1'));
  if (!match) throw new VncUserError('protocol', 'The client did not answer as a VNC viewer (RFB 3.x protocol version expected).');
  const minor = Number(match[1]);
  return minor >= 8 ? '3.8' : minor === 7 ? '3.7' : '3.3';
}

/**
 * SecurityResult failed, with the reason in RFB 3.8 (viewers show it; 3.3 and 3.7 have no
 * room for one), then the end of the connection once it is written.
 */
export function sendRfbFailure(socket: Duplex, version: RfbVersion, reason: string): void {
  const text = Buffer.from(reason, 'utf8');
  const head = Buffer.alloc(version === '3.8' ? 8 : 4);
  head.writeUInt32BE(1);
  if (version === '3.8') head.writeUInt32BE(text.length, 4);
  socket.end(version === '3.8' ? Buffer.concat([head, text]) : head);
  // A viewer that never closes its side is let go after a while.
  const timer = setTimeout(() => socket.destroy(), 5000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** ServerInit to the user: the device's size, the canonical pixel format, and the desktop name the gateway chose. */
export function sendServerInit(socket: Duplex, init: RfbServerInit, name: string): void {
  const text = Buffer.from(name, 'utf8');
  const message = Buffer.alloc(24 + text.length);
  message.writeUInt16BE(init.width, 0);
  message.writeUInt16BE(init.height, 2);
  init.pixelFormat.copy(message, 4, 0, 16);
  message.writeUInt32BE(text.length, 20);
  text.copy(message, 24);
  socket.write(message);
}
