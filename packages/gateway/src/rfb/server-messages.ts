/**
 * Finds the boundaries of the RFB messages a VNC server sends (after ServerInit), in the
 * canonical pixel format (4 bytes a pixel, Tight's 3-byte TPIXEL) by default, as the bytes arrive:
 * FramebufferUpdate with every playable encoding (Raw, CopyRect, RRE, Hextile, Tight, ZRLE;
 * DesktopSize, LastRect, Cursor, ExtendedDesktopSize), SetColourMapEntries, Bell and
 * ServerCutText. It never decodes pixels: it reads headers and skips bodies.
 */

export const ENCODING = {
  raw: 0,
  copyRect: 1,
  rre: 2,
  hextile: 5,
  tight: 7,
  zrle: 16,
  desktopSize: -223,
  lastRect: -224,
  cursor: -239,
  extendedDesktopSize: -308,
} as const;

/** One rectangle of a FramebufferUpdate; `start` and `end` are stream positions (header included). */
export interface RfbRectangle {
  x: number;
  y: number;
  width: number;
  height: number;
  encoding: number;
  start: number;
  end: number;
}

/** A whole server message: its type, and stream positions. */
export interface RfbServerMessage {
  type: number;
  start: number;
  end: number;
  /** The rectangles of a FramebufferUpdate (others: empty). */
  rectangles: RfbRectangle[];
}

/** The server sent something the gateway cannot frame (the message says what). */
export class RfbFramingError extends Error {
  override name = 'RfbFramingError';
}

const EMPTY = Buffer.alloc(0);

interface Step {
  bytes: number;
  /** Collect the bytes for `then` (headers), or just skip them (bodies). */
  collect: boolean;
  then: (data: Buffer) => void;
}

export interface ServerMessageListener {
  /** A message begins at stream position `start`. */
  start?(start: number): void;
  /** A message ended (its last byte is before `message.end`). */
  end(message: RfbServerMessage): void;
}

export class ServerMessageFramer {
  /** Bytes consumed since the stream began. */
  position = 0;
  private step!: Step;
  private have = 0;
  private parts: Buffer[] = [];
  private message: RfbServerMessage | undefined;
  private rectsLeft = 0;
  private rect: RfbRectangle | undefined;
  /** The Hextile tile expected next, while its subencoding byte is the next step. */
  private hextile: { rect: RfbRectangle; tx: number; ty: number } | undefined;

  private readonly bpp: number;
  private readonly tpixel: number;

  /**
   * `bytesPerPixel` 4 and Tight's `tightPixelBytes` 3 are the canonical format's (the
   * gateway's side); a test client in another pixel format says its own.
   */
  constructor(
    private readonly listener: ServerMessageListener,
    options: { bytesPerPixel?: number; tightPixelBytes?: number } = {},
  ) {
    this.bpp = options.bytesPerPixel ?? 4;
    this.tpixel = options.tightPixelBytes ?? 3;
    this.expectMessage();
  }

  /** Consumes a chunk of the stream; the listener hears of each message as it starts and ends. */
  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.hextile && this.have === 0) {
        offset = this.hextileTiles(chunk, offset);
        if (offset >= chunk.length) break;
      }
      const take = Math.min(this.step.bytes - this.have, chunk.length - offset);
      if (this.step.collect) this.parts.push(chunk.subarray(offset, offset + take));
      this.have += take;
      offset += take;
      this.position += take;
      this.advance();
    }
  }

  /** Runs every step whose bytes are all there (zero-byte steps at once). */
  private advance(): void {
    while (this.have === this.step.bytes) {
      const step = this.step;
      const data = step.collect ? (this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts)) : EMPTY;
      this.parts = [];
      this.have = 0;
      step.then(data);
      if (this.step === step) throw new RfbFramingError('internal: a framing step did not move on');
    }
  }

  private read(bytes: number, then: (data: Buffer) => void): void {
    this.step = { bytes, collect: true, then };
  }

  private skip(bytes: number, then: () => void): void {
    this.step = { bytes, collect: false, then };
  }

  private expectMessage(): void {
    this.read(1, (data) => {
      const type = data[0]!;
      this.message = { type, start: this.position - 1, end: 0, rectangles: [] };
      this.listener.start?.(this.message.start);
      switch (type) {
        case 0:
          return this.read(3, (head) => {
            this.rectsLeft = head.readUInt16BE(1);
            this.expectRectangle();
          });
        case 1:
          return this.read(5, (head) => this.skip(6 * head.readUInt16BE(3), () => this.endMessage()));
        case 2:
          return this.endMessage();
        case 3:
          return this.read(7, (head) => this.skip(head.readUInt32BE(3), () => this.endMessage()));
        default:
          throw new RfbFramingError(`The device sent RFB message type ${type}, which the gateway does not know.`);
      }
    });
  }

  private endMessage(): void {
    const message = this.message!;
    message.end = this.position;
    this.message = undefined;
    this.expectMessage();
    this.listener.end(message);
  }

  private expectRectangle(): void {
    if (this.rectsLeft === 0) return this.endMessage();
    this.rectsLeft--;
    this.read(12, (head) => {
      const rect: RfbRectangle = {
        x: head.readUInt16BE(0),
        y: head.readUInt16BE(2),
        width: head.readUInt16BE(4),
        height: head.readUInt16BE(6),
        encoding: head.readInt32BE(8),
        start: this.position - 12,
        end: 0,
      };
      this.rect = rect;
      this.rectangleBody(rect);
    });
  }

  private endRectangle = (): void => {
    const rect = this.rect!;
    rect.end = this.position;
    this.message!.rectangles.push(rect);
    this.rect = undefined;
    if (rect.encoding === ENCODING.lastRect) this.rectsLeft = 0;
    this.expectRectangle();
  };

  private rectangleBody(rect: RfbRectangle): void {
    const { width: w, height: h } = rect;
    switch (rect.encoding) {
      case ENCODING.raw:
        return this.skip(w * h * this.bpp, this.endRectangle);
      case ENCODING.copyRect:
        return this.skip(4, this.endRectangle);
      case ENCODING.rre:
        return this.read(4 + this.bpp, (head) => this.skip(head.readUInt32BE(0) * (this.bpp + 8), this.endRectangle));
      case ENCODING.hextile:
        return this.hextileTile(rect, 0, 0);
      case ENCODING.tight:
        return this.tight(rect);
      case ENCODING.zrle:
        return this.read(4, (head) => this.skip(head.readUInt32BE(0), this.endRectangle));
      case ENCODING.desktopSize:
      case ENCODING.lastRect:
        return this.skip(0, this.endRectangle);
      case ENCODING.cursor:
        return this.skip(w * h * this.bpp + ((w + 7) >> 3) * h, this.endRectangle);
      case ENCODING.extendedDesktopSize:
        return this.read(4, (head) => this.skip(16 * head[0]!, this.endRectangle));
      default:
        throw new RfbFramingError(`The device sent a rectangle in encoding ${rect.encoding}, which the gateway did not ask for.`);
    }
  }

  /** Hextile: 16×16 tiles left to right, top to bottom, each with its subencoding byte. */
  private hextileTile(rect: RfbRectangle, tx: number, ty: number): void {
    this.hextile = undefined;
    if (ty >= rect.height || rect.width === 0) return this.skip(0, this.endRectangle);
    const tw = Math.min(16, rect.width - tx);
    const th = Math.min(16, rect.height - ty);
    const next = () => (tx + 16 < rect.width ? this.hextileTile(rect, tx + 16, ty) : this.hextileTile(rect, 0, ty + 16));
    this.hextile = { rect, tx, ty };
    this.read(1, (head) => {
      this.hextile = undefined;
      const sub = head[0]!;
      if (sub & 1) return this.skip(tw * th * this.bpp, next);
      const colours = (sub & 2 ? this.bpp : 0) + (sub & 4 ? this.bpp : 0);
      if (!(sub & 8)) return this.skip(colours, next);
      this.read(colours + 1, (data) => this.skip(data[colours]! * ((sub & 16 ? this.bpp : 0) + 2), next));
    });
  }

  /**
   * The fast path for Hextile (thousands of small tiles a screen): skips every whole tile
   * in the chunk from `offset` without a step each, then leaves the step machine at the
   * next tile. Answers where it stopped.
   */
  private hextileTiles(chunk: Buffer, offset: number): number {
    const { rect } = this.hextile!;
    let { tx, ty } = this.hextile!;
    const bpp = this.bpp;
    const start = offset;
    while (ty < rect.height && offset < chunk.length) {
      const tw = Math.min(16, rect.width - tx);
      const th = Math.min(16, rect.height - ty);
      const sub = chunk[offset]!;
      let size = 1;
      if (sub & 1) size += tw * th * bpp;
      else {
        size += (sub & 2 ? bpp : 0) + (sub & 4 ? bpp : 0);
        if (sub & 8) {
          if (offset + size >= chunk.length) break;
          size += 1 + chunk[offset + size]! * ((sub & 16 ? bpp : 0) + 2);
        }
      }
      if (offset + size > chunk.length) break;
      offset += size;
      tx += 16;
      if (tx >= rect.width) {
        tx = 0;
        ty += 16;
      }
    }
    if (offset === start) return offset;
    this.position += offset - start;
    this.hextileTile(rect, tx, ty);
    this.advance();
    return offset;
  }

  private tight(rect: RfbRectangle): void {
    const pixels = rect.width * rect.height;
    this.read(1, (head) => {
      const control = head[0]!;
      const kind = control >> 4;
      if (kind === 8) return this.skip(this.tpixel, this.endRectangle); // fill
      if (kind === 9) return this.compactLength((length) => this.skip(length, this.endRectangle)); // JPEG
      if (kind > 9) throw new RfbFramingError(`The device sent a Tight rectangle with compression control ${control}.`);
      const data = (size: number) =>
        size < 12 ? this.skip(size, this.endRectangle) : this.compactLength((length) => this.skip(length, this.endRectangle));
      if (!(control & 0x40)) return data(pixels * this.tpixel);
      this.read(1, (filter) => {
        if (filter[0] === 0 || filter[0] === 2) return data(pixels * this.tpixel);
        if (filter[0] !== 1) throw new RfbFramingError(`The device sent a Tight rectangle with filter ${filter[0]}.`);
        this.read(1, (count) => {
          const colours = count[0]! + 1;
          const size = colours === 2 ? ((rect.width + 7) >> 3) * rect.height : pixels;
          this.skip(colours * this.tpixel, () => data(size));
        });
      });
    });
  }

  /** Tight's compact length: 1 to 3 bytes, 7 bits each, low first. */
  private compactLength(then: (length: number) => void, length = 0, shift = 0): void {
    this.read(1, (data) => {
      const byte = data[0]!;
      const value = length | ((shift === 14 ? byte : byte & 0x7f) << shift);
      if (byte & 0x80 && shift < 14) return this.compactLength(then, value, shift + 7);
      then(value);
    });
  }
}
