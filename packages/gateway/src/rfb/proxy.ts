import type { Duplex } from 'node:stream';
import type { GatewayLogger } from '../gateway.js';
import {
  CLIENT_MESSAGE,
  RfbClientMessageError,
  clientMessageLength,
  encodingsOf,
  framebufferUpdateRequest,
  setEncodingsMessage,
} from './client-messages.js';
import {
  CONVERTIBLE_ENCODINGS,
  convertServerMessage,
  isCanonical,
  parsePixelFormat,
  unsupportedPixelFormat,
  type PixelFormat,
} from './pixel.js';
import type { RfbRecorder } from './recording.js';
import { ENCODING, RfbFramingError, ServerMessageFramer, type RfbServerMessage } from './server-messages.js';
import type { RfbServerInit } from './target.js';

/** Bytes waiting for the user's socket past which the device's side is paused until they left. */
const USER_BACKLOG_BYTES = 1024 * 1024;

/** The reason of a session the device's side ended. */
export const TARGET_CLOSED = 'The device closed the VNC connection.';

export interface RfbProxyResult {
  /** Bytes from the user to the device, and back. */
  bytesIn: number;
  bytesOut: number;
  reason: string | null;
  result: 'success' | 'failure';
}

export interface RfbProxyOptions {
  user: Duplex;
  target: Duplex;
  init: RfbServerInit;
  /** Gets every server message the device sends (canonical pixels); closed when the proxy ends. */
  recorder?: RfbRecorder | undefined;
  logger?: GatewayLogger | undefined;
  /** Called once, when the device's first FramebufferUpdate has been framed and sent on to the user. */
  onFirstUpdate?: (() => void) | undefined;
}

/**
 * Relays an RFB session after both handshakes. The user's messages are checked one by one:
 * SetEncodings is cut down to the encodings the recording player decodes, SetPixelFormat is
 * kept from the device (it stays in the canonical format; a user who wants another gets
 * Raw rectangles converted), and a message type the gateway does not know ends the session.
 * The device's messages are framed, so the recording holds whole messages.
 */
export class RfbProxy {
  readonly done: Promise<RfbProxyResult>;
  private resolve!: (result: RfbProxyResult) => void;
  private finished = false;
  private bytesIn = 0;
  private bytesOut = 0;
  private readonly user: Duplex;
  private readonly target: Duplex;
  private readonly recorder: RfbRecorder | undefined;
  private onFirstUpdate: (() => void) | undefined;
  private width: number;
  private height: number;
  /** The user's pixel format, when it is not the canonical one. */
  private userFormat: PixelFormat | undefined;
  /** The encodings the user asked for (SetEncodings), before filtering. */
  private userEncodings: number[] = [0];
  private clientPending: Buffer = Buffer.alloc(0);
  private readonly framer: ServerMessageFramer;
  /** The device's chunk being framed, where it starts in the stream, and how much of it is handled. */
  private chunk: Buffer = Buffer.alloc(0);
  private chunkStart = 0;
  private handled = 0;
  /** The message being received is converted (the user's format differed when it began). */
  private converting = false;
  private messageParts: Buffer[] = [];
  private toUser: Buffer[] = [];
  /** Some of the chunk being framed went into a converted message (so it cannot go to the user as it came). */
  private chunkConverted = false;
  /** Where the message in progress began (what the recorder got ends there), and its parts from earlier chunks. */
  private recordFrom = 0;
  private recordParts: Buffer[] = [];
  /** The sides whose write buffers are full (the other side is paused until they drain). */
  private readonly draining = new Set<Duplex>();
  /** Writes to the user wait for the end of this turn of the event loop. */
  private userCorked = false;

  constructor(options: RfbProxyOptions) {
    this.user = options.user;
    this.target = options.target;
    this.recorder = options.recorder;
    this.onFirstUpdate = options.onFirstUpdate;
    this.width = options.init.width;
    this.height = options.init.height;
    this.done = new Promise((resolve) => (this.resolve = resolve));
    this.framer = new ServerMessageFramer({
      start: () => {
        this.converting = this.userFormat !== undefined;
      },
      end: (message) => this.serverMessage(message),
    });
    this.user.on('data', (data: Buffer) => this.fromUser(data));
    this.target.on('data', (data: Buffer) => this.fromTarget(data));
    this.user.on('error', (error) => this.finish('failure', `The connection to the VNC viewer failed: ${error.message}`));
    this.target.on('error', (error) => this.finish('failure', `The connection to the device failed: ${error.message}`));
    this.user.on('close', () => this.finish('success', null));
    this.user.on('end', () => this.finish('success', null));
    this.target.on('close', () => this.finish('success', TARGET_CLOSED));
    this.target.on('end', () => this.finish('success', TARGET_CLOSED));
    this.user.resume();
    this.target.resume();
    // A side that closed between its handshake and now has no close event left to hear.
    if (this.user.destroyed) this.finish('success', null);
    else if (this.target.destroyed) this.finish('success', TARGET_CLOSED);
  }

  /** Ends the session (an administrator ended it, the window closed): both sides close, the result is a failure with `reason`. */
  end(reason: string): void {
    this.finish('failure', reason);
  }

  private fromUser(data: Buffer): void {
    if (this.finished) return;
    this.bytesIn += data.length;
    let pending = this.clientPending.length === 0 ? data : Buffer.concat([this.clientPending, data]);
    try {
      for (;;) {
        const length = clientMessageLength(pending);
        if (length === null || pending.length < length) break;
        this.userMessage(pending.subarray(0, length));
        pending = pending.subarray(length);
      }
    } catch (error) {
      if (!(error instanceof RfbClientMessageError)) throw error;
      this.finish('failure', error.message);
      return;
    }
    this.clientPending = pending.length === 0 ? Buffer.alloc(0) : Buffer.from(pending);
  }

  private userMessage(message: Buffer): void {
    const type = message[0];
    if (type === CLIENT_MESSAGE.setPixelFormat) {
      const format = parsePixelFormat(message.subarray(4, 20));
      const problem = unsupportedPixelFormat(format);
      if (problem) throw new RfbClientMessageError(problem);
      const wasConverting = this.userFormat !== undefined;
      this.userFormat = isCanonical(format) ? undefined : format;
      if (wasConverting !== (this.userFormat !== undefined)) this.send(this.target, this.user, this.targetEncodings());
    } else if (type === CLIENT_MESSAGE.setEncodings) {
      this.userEncodings = encodingsOf(message);
      this.send(this.target, this.user, this.targetEncodings());
    } else {
      this.send(this.target, this.user, message);
    }
  }

  /** SetEncodings for the device: the user's playable ones, or only convertible ones while converting. */
  private targetEncodings(): Buffer {
    return this.userFormat ? setEncodingsMessage(this.userEncodings, CONVERTIBLE_ENCODINGS) : setEncodingsMessage(this.userEncodings);
  }

  private fromTarget(data: Buffer): void {
    if (this.finished) return;
    this.bytesOut += data.length;
    this.chunk = data;
    this.chunkStart = this.framer.position;
    this.handled = 0;
    this.chunkConverted = false;
    try {
      this.framer.push(data);
    } catch (error) {
      if (!(error instanceof RfbFramingError)) throw error;
      this.finish('failure', error.message);
      return;
    }
    this.take(data.length);
    const out = this.toUser;
    this.toUser = [];
    // Nothing converted: the pieces are the chunk itself, which goes on without a copy.
    if (!this.chunkConverted) this.send(this.user, this.target, data);
    else if (out.length > 0) this.send(this.user, this.target, out.length === 1 ? out[0]! : Buffer.concat(out));
    // The recorder gets whole messages: the start of the one in progress waits for its end.
    if (this.recorder && this.framer.position > this.recordFrom)
      this.recordParts.push(data.subarray(Math.max(0, this.recordFrom - this.chunkStart)));
  }

  /** Moves the chunk's bytes up to `offset` to the user, or into the message being converted. */
  private take(offset: number): void {
    const piece = this.chunk.subarray(this.handled, offset);
    this.handled = offset;
    if (piece.length === 0) return;
    if (this.converting) {
      this.messageParts.push(piece);
      this.chunkConverted = true;
    } else this.toUser.push(piece);
  }

  private serverMessage(message: RfbServerMessage): void {
    this.take(message.end - this.chunkStart);
    if (message.type === 0 && this.onFirstUpdate) {
      // Sent on with the rest of its chunk, in this turn.
      queueMicrotask(this.onFirstUpdate);
      this.onFirstUpdate = undefined;
    }
    if (this.converting) {
      this.chunkConverted = true;
      const bytes = Buffer.concat(this.messageParts);
      this.messageParts = [];
      // The user may have gone back to the canonical format while the message arrived.
      const converted = this.userFormat ? convertServerMessage(bytes, message, this.userFormat) : { bytes, dropped: false };
      this.toUser.push(converted.bytes);
      if (converted.dropped) this.send(this.target, this.user, framebufferUpdateRequest(false, this.width, this.height));
    }
    for (const rect of message.rectangles) {
      if (rect.encoding === ENCODING.desktopSize || rect.encoding === ENCODING.extendedDesktopSize) {
        this.width = rect.width;
        this.height = rect.height;
      }
    }
    if (this.recorder) {
      // The message's parts as they arrived (socket chunks are never reused): no copy of a large update.
      const parts = this.recordParts;
      parts.push(this.chunk.subarray(Math.max(0, this.recordFrom - this.chunkStart), message.end - this.chunkStart));
      this.recordParts = [];
      this.recordFrom = message.end;
      this.recorder.write(parts);
    }
  }

  /**
   * Writes to one side; while it cannot take more, the other side is paused. Writes to the
   * user in one turn of the event loop (the device's chunks read in one go) leave together,
   * as one writev, once the turn's reads are done.
   */
  private send(to: Duplex, from: Duplex, data: Buffer): void {
    if (to === this.user) {
      if (!this.userCorked) {
        this.userCorked = true;
        to.cork();
        setImmediate(() => {
          this.userCorked = false;
          to.uncork();
          if (to.writableLength >= USER_BACKLOG_BYTES) this.pauseUntilDrained(to, from);
        });
      }
      // Corked, write() says "full" past 16 KiB: the backpressure is judged once the batch has left.
      to.write(data);
      return;
    }
    if (!to.write(data)) this.pauseUntilDrained(to, from);
  }

  private pauseUntilDrained(to: Duplex, from: Duplex): void {
    if (this.draining.has(to)) return;
    this.draining.add(to);
    from.pause();
    to.once('drain', () => {
      this.draining.delete(to);
      from.resume();
    });
  }

  private finish(result: 'success' | 'failure', reason: string | null): void {
    if (this.finished) return;
    this.finished = true;
    this.user.destroy();
    this.target.destroy();
    const outcome: RfbProxyResult = { bytesIn: this.bytesIn, bytesOut: this.bytesOut, result, reason };
    void (this.recorder?.close() ?? Promise.resolve()).catch(() => undefined).then(() => this.resolve(outcome));
  }
}
