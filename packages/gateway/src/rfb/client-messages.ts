import { PLAYABLE_ENCODINGS } from '@gatehouse/core';

/** The most clipboard text a user may send in one ClientCutText. */
export const CLIENT_CUT_TEXT_LIMIT = 1024 * 1024;

export const CLIENT_MESSAGE = {
  setPixelFormat: 0,
  setEncodings: 2,
  framebufferUpdateRequest: 3,
  keyEvent: 4,
  pointerEvent: 5,
  clientCutText: 6,
  /** With ExtendedDesktopSize (a playable pseudo-encoding): the viewer asks for another size. */
  setDesktopSize: 251,
} as const;

/** A user's message the gateway does not pass on; the message is the session's end reason. */
export class RfbClientMessageError extends Error {
  override name = 'RfbClientMessageError';
}

/**
 * The length of the client message at the start of `buffer`, or null while it is incomplete.
 * Throws for a message type the gateway does not pass on, or clipboard text over the limit.
 */
export function clientMessageLength(buffer: Buffer): number | null {
  const type = buffer[0];
  const need = (bytes: number, length: (b: Buffer) => number) => (buffer.length < bytes ? null : length(buffer));
  switch (type) {
    case undefined:
      return null;
    case CLIENT_MESSAGE.setPixelFormat:
      return 20;
    case CLIENT_MESSAGE.setEncodings:
      return need(4, (b) => 4 + 4 * b.readUInt16BE(2));
    case CLIENT_MESSAGE.framebufferUpdateRequest:
      return 10;
    case CLIENT_MESSAGE.keyEvent:
      return 8;
    case CLIENT_MESSAGE.pointerEvent:
      return 6;
    case CLIENT_MESSAGE.clientCutText:
      return need(8, (b) => {
        const length = b.readUInt32BE(4);
        if (length > CLIENT_CUT_TEXT_LIMIT)
          throw new RfbClientMessageError(
            `The VNC viewer sent ${length} bytes of clipboard text; the gateway passes at most ${CLIENT_CUT_TEXT_LIMIT}.`,
          );
        return 8 + length;
      });
    case CLIENT_MESSAGE.setDesktopSize:
      return need(8, (b) => 8 + 16 * b[6]!);
    default:
      throw new RfbClientMessageError(`The VNC viewer sent RFB message type ${type}, which the gateway does not pass on.`);
  }
}

/** The encodings of a SetEncodings message. */
export function encodingsOf(message: Buffer): number[] {
  const count = message.readUInt16BE(2);
  return Array.from({ length: count }, (_, i) => message.readInt32BE(4 + 4 * i));
}

/** A SetEncodings message with the user's encodings that are in `allowed` (PLAYABLE_ENCODINGS by default), in the user's order. */
export function setEncodingsMessage(encodings: readonly number[], allowed: ReadonlySet<number> = PLAYABLE_ENCODINGS): Buffer {
  const kept = encodings.filter((e) => allowed.has(e));
  const message = Buffer.alloc(4 + 4 * kept.length);
  message[0] = CLIENT_MESSAGE.setEncodings;
  message.writeUInt16BE(kept.length, 2);
  kept.forEach((e, i) => message.writeInt32BE(e, 4 + 4 * i));
  return message;
}

export function framebufferUpdateRequest(incremental: boolean, width: number, height: number): Buffer {
  const message = Buffer.alloc(10);
  message[0] = CLIENT_MESSAGE.framebufferUpdateRequest;
  message[1] = incremental ? 1 : 0;
  message.writeUInt16BE(width, 6);
  message.writeUInt16BE(height, 8);
  return message;
}
