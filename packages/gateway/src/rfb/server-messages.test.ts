import { describe, expect, it } from 'vitest';
import { PLAYABLE_ENCODINGS } from '@gatehouse/core';
import { clientMessageLength, encodingsOf, setEncodingsMessage } from './client-messages.js';
import { convertPixels, convertServerMessage, parsePixelFormat } from './pixel.js';
import { RfbFramingError, ServerMessageFramer, type RfbServerMessage } from './server-messages.js';

const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const rect = (x: number, y: number, w: number, h: number, encoding: number, body: Buffer = Buffer.alloc(0)) => {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(x, 0);
  head.writeUInt16BE(y, 2);
  head.writeUInt16BE(w, 4);
  head.writeUInt16BE(h, 6);
  head.writeInt32BE(encoding, 8);
  return Buffer.concat([head, body]);
};
const update = (...rects: Buffer[]) => Buffer.concat([Buffer.of(0, 0), u16(rects.length), ...rects]);
/** #3366cc in the canonical format (bytes R, G, B, padding). */
const pixel = Buffer.of(0x33, 0x66, 0xcc, 0);

/** Messages covering every playable encoding, with the canonical 4-byte pixels. */
const messages: Buffer[] = [
  update(
    rect(0, 0, 2, 2, 0, Buffer.concat([pixel, pixel, pixel, pixel])),
    rect(4, 4, 2, 2, 1, Buffer.concat([u16(0), u16(0)])),
    // RRE: 2 subrectangles
    rect(0, 0, 8, 8, 2, Buffer.concat([u32(2), pixel, pixel, Buffer.alloc(8), pixel, Buffer.alloc(8)])),
    // Hextile 20×17: 4 tiles: raw 16×16; background+foreground with 2 plain subrects; coloured subrects (1); nothing
    rect(
      0,
      0,
      20,
      17,
      5,
      Buffer.concat([
        Buffer.of(1),
        Buffer.alloc(16 * 16 * 4),
        Buffer.of(2 | 4 | 8),
        pixel,
        pixel,
        Buffer.of(2),
        Buffer.alloc(4),
        Buffer.of(8 | 16, 1),
        pixel,
        Buffer.alloc(2),
        Buffer.of(0),
      ]),
    ),
    rect(0, 0, 64, 64, 16, Buffer.concat([u32(5), Buffer.alloc(5)])),
    rect(0, 0, 1, 1, -239, Buffer.concat([pixel, Buffer.of(0x80)])),
    rect(0, 0, 800, 600, -308, Buffer.concat([Buffer.of(1, 0, 0, 0), Buffer.alloc(16)])),
    rect(0, 0, 1024, 768, -223),
  ),
  // Tight: fill, JPEG (2-byte compact length 200), copy filter small (2×1×3 = 6 < 12 raw),
  // palette of 2 colours (1 bit a pixel, compressed, compact length 3), gradient compressed
  update(
    rect(0, 0, 10, 10, 7, Buffer.of(0x80, 1, 2, 3)),
    rect(0, 0, 10, 10, 7, Buffer.concat([Buffer.of(0x90, 0xc8, 0x01), Buffer.alloc(200)])),
    rect(0, 0, 2, 1, 7, Buffer.concat([Buffer.of(0x40, 0), Buffer.alloc(6)])),
    rect(0, 0, 16, 16, 7, Buffer.concat([Buffer.of(0x40, 1, 1), Buffer.alloc(6), Buffer.of(3), Buffer.alloc(3)])),
    rect(0, 0, 8, 8, 7, Buffer.concat([Buffer.of(0x40, 2), Buffer.of(0x81, 0x01), Buffer.alloc(129)])),
    rect(0, 0, 4, 4, 7, Buffer.concat([Buffer.of(0x00), Buffer.of(10), Buffer.alloc(10)])),
  ),
  // LastRect ends an update announced with 0xffff rectangles.
  Buffer.concat([Buffer.of(0, 0, 0xff, 0xff), rect(0, 0, 1, 1, 0, pixel), rect(0, 0, 0, 0, -224)]),
  Buffer.concat([Buffer.of(1, 0), u16(0), u16(2), Buffer.alloc(12)]),
  Buffer.of(2),
  Buffer.concat([Buffer.of(3, 0, 0, 0), u32(5), Buffer.from('hello')]),
];
const stream = Buffer.concat(messages);
const ends = messages.reduce<number[]>((acc, m) => [...acc, (acc.at(-1) ?? 0) + m.length], []);

function frame(chunks: Buffer[]): RfbServerMessage[] {
  const seen: RfbServerMessage[] = [];
  const framer = new ServerMessageFramer({ end: (m) => seen.push(m) });
  for (const chunk of chunks) framer.push(chunk);
  return seen;
}

describe('ServerMessageFramer', () => {
  it('finds the end of every message, whole or a byte at a time', () => {
    const whole = frame([stream]);
    expect(whole.map((m) => m.end)).toEqual(ends);
    expect(whole.map((m) => m.type)).toEqual([0, 0, 0, 1, 2, 3]);
    expect(whole[0]!.rectangles.map((r) => r.encoding)).toEqual([0, 1, 2, 5, 16, -239, -308, -223]);
    const bytewise = frame([...stream].map((b) => Buffer.of(b)));
    expect(bytewise).toEqual(whole);
    // Chunks of 1 to 37 bytes: cuts fall everywhere, inside and between Hextile tiles.
    const chunks: Buffer[] = [];
    for (let offset = 0, size = 1; offset < stream.length; offset += size, size = (size % 37) + 1)
      chunks.push(stream.subarray(offset, offset + size));
    expect(frame(chunks)).toEqual(whole);
  });

  it('refuses what it cannot frame', () => {
    expect(() => frame([Buffer.of(9)])).toThrow(RfbFramingError);
    expect(() => frame([update(rect(0, 0, 1, 1, -314))])).toThrow('encoding -314');
  });
});

describe('client messages', () => {
  it('keeps only playable encodings, in the viewer’s order', () => {
    const asked = [-314, 16, 7, -312, 0, 1, -239, -250, -26, 0xc0a1e5ce | 0];
    const message = setEncodingsMessage(asked);
    expect(encodingsOf(message)).toEqual([16, 7, 0, 1, -239, -250, -26]);
    expect(encodingsOf(message).every((e) => PLAYABLE_ENCODINGS.has(e))).toBe(true);
    expect(clientMessageLength(message)).toBe(message.length);
  });

  it('caps clipboard text and refuses unknown types', () => {
    expect(clientMessageLength(Buffer.of(6, 0, 0, 0, 0, 0, 0))).toBeNull();
    expect(clientMessageLength(Buffer.concat([Buffer.of(6, 0, 0, 0), u32(1024 * 1024)]))).toBe(8 + 1024 * 1024);
    expect(() => clientMessageLength(Buffer.concat([Buffer.of(6, 0, 0, 0), u32(1024 * 1024 + 1)]))).toThrow('at most 1048576');
    expect(() => clientMessageLength(Buffer.of(150))).toThrow('type 150');
  });
});

describe('pixel conversion', () => {
  const rgb565 = parsePixelFormat(Uint8Array.of(16, 16, 0, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0));

  it('converts canonical pixels to RGB565', () => {
    // #3366cc → r 6, g 25, b 25
    expect(convertPixels(pixel, rgb565).readUInt16LE(0)).toBe((6 << 11) | (25 << 5) | 25);
  });

  it('converts Raw rectangles and drops the ones it cannot convert', () => {
    const bytes = update(rect(0, 0, 1, 1, 0, pixel), rect(0, 0, 4, 4, 7, Buffer.of(0x80, 1, 2, 3)), rect(0, 0, 1, 1, 1, Buffer.alloc(4)));
    const [message] = frame([bytes]);
    const converted = convertServerMessage(bytes, message!, rgb565);
    expect(converted.dropped).toBe(true);
    expect(converted.bytes).toEqual(
      Buffer.concat([Buffer.of(0, 0, 0, 2), rect(0, 0, 1, 1, 0, u16le((6 << 11) | (25 << 5) | 25)), rect(0, 0, 1, 1, 1, Buffer.alloc(4))]),
    );
  });
});

function u16le(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}
