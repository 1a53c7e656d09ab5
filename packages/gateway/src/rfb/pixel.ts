import { CANONICAL_PIXEL_FORMAT } from '@gatehouse/core';
import { ENCODING, type RfbServerMessage } from './server-messages.js';

/** An RFB PIXEL_FORMAT, parsed. */
export interface PixelFormat {
  bitsPerPixel: number;
  depth: number;
  bigEndian: boolean;
  trueColour: boolean;
  redMax: number;
  greenMax: number;
  blueMax: number;
  redShift: number;
  greenShift: number;
  blueShift: number;
}

export function parsePixelFormat(bytes: Uint8Array): PixelFormat {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    bitsPerPixel: b[0]!,
    depth: b[1]!,
    bigEndian: b[2] !== 0,
    trueColour: b[3] !== 0,
    redMax: b.readUInt16BE(4),
    greenMax: b.readUInt16BE(6),
    blueMax: b.readUInt16BE(8),
    redShift: b[10]!,
    greenShift: b[11]!,
    blueShift: b[12]!,
  };
}

const CANONICAL = parsePixelFormat(CANONICAL_PIXEL_FORMAT);

/** Whether pixels in `format` are laid out as the canonical ones (the depth alone may differ). */
export function isCanonical(format: PixelFormat): boolean {
  const c = CANONICAL;
  return (
    format.bitsPerPixel === c.bitsPerPixel &&
    format.trueColour &&
    format.bigEndian === c.bigEndian &&
    format.redMax === c.redMax &&
    format.greenMax === c.greenMax &&
    format.blueMax === c.blueMax &&
    format.redShift === c.redShift &&
    format.greenShift === c.greenShift &&
    format.blueShift === c.blueShift
  );
}

/** Why the gateway cannot serve `format`; null when it can (true colour, 8, 16 or 32 bits a pixel). */
export function unsupportedPixelFormat(format: PixelFormat): string | null {
  if (!format.trueColour)
    return 'The VNC viewer asked for a colour-map pixel format, which the gateway does not support. Set the viewer to full colour (or 8/16-bit true colour).';
  if (![8, 16, 32].includes(format.bitsPerPixel))
    return `The VNC viewer asked for ${format.bitsPerPixel} bits per pixel; the gateway supports 8, 16 and 32.`;
  return null;
}

/** The encodings a target may use while the user wants another pixel format: those whose pixels the gateway converts. */
export const CONVERTIBLE_ENCODINGS: ReadonlySet<number> = new Set([
  ENCODING.raw,
  ENCODING.copyRect,
  ENCODING.desktopSize,
  ENCODING.lastRect,
]);

/** Canonical pixels (32 bits, little-endian, 8 bits a channel at CANONICAL's shifts) in `format`. */
export function convertPixels(canonical: Buffer, format: PixelFormat): Buffer {
  const bytes = format.bitsPerPixel / 8;
  const count = canonical.length >> 2;
  const out = Buffer.alloc(count * bytes);
  const { redMax, greenMax, blueMax, redShift, greenShift, blueShift, bigEndian } = format;
  for (let i = 0; i < count; i++) {
    const pixel = canonical.readUInt32LE(4 * i);
    const red = (pixel >>> CANONICAL.redShift) & 0xff;
    const green = (pixel >>> CANONICAL.greenShift) & 0xff;
    const blue = (pixel >>> CANONICAL.blueShift) & 0xff;
    const value =
      ((Math.round((red * redMax) / 255) << redShift) |
        (Math.round((green * greenMax) / 255) << greenShift) |
        (Math.round((blue * blueMax) / 255) << blueShift)) >>>
      0;
    if (bytes === 1) out[i] = value & 0xff;
    else if (bytes === 2) {
      if (bigEndian) out.writeUInt16BE(value & 0xffff, 2 * i);
      else out.writeUInt16LE(value & 0xffff, 2 * i);
    } else if (bigEndian) out.writeUInt32BE(value, 4 * i);
    else out.writeUInt32LE(value, 4 * i);
  }
  return out;
}

/**
 * A whole server message from the target (canonical pixels) for a user whose pixel format
 * differs: Raw rectangles converted, CopyRect and the size pseudo-rectangles kept, and any
 * other rectangle (sent before the target saw the restricted encodings) dropped — `dropped`
 * says so, and the caller asks the target for a full update.
 */
export function convertServerMessage(bytes: Buffer, message: RfbServerMessage, format: PixelFormat): { bytes: Buffer; dropped: boolean } {
  if (message.type !== 0) return { bytes, dropped: false };
  const parts: Buffer[] = [];
  let kept = 0;
  let dropped = false;
  let lastRect = false;
  for (const rect of message.rectangles) {
    const piece = bytes.subarray(rect.start - message.start, rect.end - message.start);
    if (rect.encoding === ENCODING.raw) {
      parts.push(piece.subarray(0, 12), convertPixels(piece.subarray(12), format));
    } else if (CONVERTIBLE_ENCODINGS.has(rect.encoding)) {
      parts.push(piece);
    } else {
      dropped = true;
      continue;
    }
    kept++;
    if (rect.encoding === ENCODING.lastRect) lastRect = true;
  }
  const head = Buffer.alloc(4);
  head.writeUInt16BE(lastRect ? 0xffff : kept, 2);
  return { bytes: Buffer.concat([head, ...parts]), dropped };
}
