import net from 'node:net';
import type { Duplex } from 'node:stream';
import { CANONICAL_PIXEL_FORMAT } from '@gatehouse/core';
import { ServerMessageFramer, vncAuthResponse, type RfbServerMessage } from '@gatehouse/gateway';

/** RGB565, little-endian: a 16-bit format that is not the canonical one. */
export const PIXEL_FORMAT_RGB565 = Uint8Array.of(16, 16, 0, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0);

export interface RgbColour {
  r: number;
  g: number;
  b: number;
}

export interface RfbTestClientOptions {
  /** VncAuth password; without one, security type None. */
  password?: string | undefined;
  /** The protocol version the client answers (default 3.8). */
  version?: '3.3' | '3.7' | '3.8';
}

/** The server refused the handshake: SecurityResult failed (with its reason in RFB 3.8), or no security types. */
export class RfbRefusedError extends Error {
  constructor(readonly reason: string) {
    super(`The VNC server refused: ${reason}`);
    this.name = 'RfbRefusedError';
  }
}

/**
 * A small RFB client for tests, in process: handshake (VncAuth or None, RFB 3.8),
 * SetPixelFormat, SetEncodings, FramebufferUpdateRequest, and a framebuffer it keeps from
 * Raw and CopyRect rectangles (other encodings are framed and counted, not decoded).
 */
export class RfbTestClient {
  width = 0;
  height = 0;
  name = '';
  serverPixelFormat = Buffer.alloc(16);
  /** Every rectangle encoding received, and how many server messages arrived. */
  readonly encodingsSeen = new Set<number>();
  messages = 0;
  bell = 0;
  serverCutText: string[] = [];
  private rgb = new Uint8Array(0);
  private format = Buffer.from(CANONICAL_PIXEL_FORMAT);
  private framer!: ServerMessageFramer;
  private pending: Buffer[] = [];
  private pendingStart = 0;
  private readonly buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private wake: (() => void) | undefined;
  private closed = false;
  private readonly listeners = new Set<() => void>();

  private constructor(readonly socket: Duplex) {
    socket.on('data', (data: Buffer) => {
      this.buffered.push(data);
      this.bufferedBytes += data.length;
      this.wake?.();
    });
    const closed = () => {
      this.closed = true;
      this.wake?.();
      for (const l of this.listeners) l();
    };
    socket.on('close', closed);
    socket.on('end', closed);
    socket.on('error', closed);
  }

  /** Connects to 127.0.0.1:port and completes the handshake (VncAuth with `password`, else None). */
  static async connect(port: number, options: RfbTestClientOptions & { host?: string } = {}): Promise<RfbTestClient> {
    const socket = net.connect({ host: options.host ?? '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return RfbTestClient.over(socket, options);
  }

  /** The handshake over any stream (a WebSocket's, say). */
  static async over(socket: Duplex, options: RfbTestClientOptions = {}): Promise<RfbTestClient> {
    const client = new RfbTestClient(socket);
    try {
      await client.handshake(options.password, options.version ?? '3.8');
    } catch (error) {
      socket.destroy();
      throw error;
    }
    return client;
  }

  private async read(bytes: number): Promise<Buffer> {
    while (this.bufferedBytes < bytes) {
      if (this.closed) throw new Error(`The VNC server closed the connection (wanted ${bytes} bytes, had ${this.bufferedBytes}).`);
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    const all = Buffer.concat(this.buffered);
    this.buffered.length = 0;
    if (all.length > bytes) this.buffered.push(all.subarray(bytes));
    this.bufferedBytes = all.length - bytes;
    return all.subarray(0, bytes);
  }

  private async handshake(password: string | undefined, version: '3.3' | '3.7' | '3.8'): Promise<void> {
    const server = (await this.read(12)).toString('latin1');
    if (!server.startsWith('RFB 003.')) throw new Error(`Not an RFB server: ${JSON.stringify(server)}`);
    this.socket.write(`RFB 003.00${version.slice(2)}\n`);
    let type: number;
    if (version === '3.3') {
      type = (await this.read(4)).readUInt32BE(0);
      if (type === 0) throw new RfbRefusedError(await this.readString());
    } else {
      const count = (await this.read(1))[0]!;
      if (count === 0) throw new RfbRefusedError(await this.readString());
      const types = [...(await this.read(count))];
      type = password !== undefined && types.includes(2) ? 2 : types.includes(1) ? 1 : types[0]!;
      this.socket.write(Buffer.of(type));
    }
    if (type !== 1 && type !== 2) throw new Error(`The server chose security type ${type}; the test client speaks None and VncAuth.`);
    if (type === 2) {
      const challenge = await this.read(16);
      this.socket.write(vncAuthResponse(challenge, password ?? ''));
    }
    // RFB 3.3 and 3.7 have no SecurityResult after None, and no reason after a failure.
    if (type === 2 || version === '3.8') {
      if ((await this.read(4)).readUInt32BE(0) !== 0) throw new RfbRefusedError(version === '3.8' ? await this.readString() : '');
    }
    this.socket.write(Buffer.of(1));
    const init = await this.read(24);
    this.width = init.readUInt16BE(0);
    this.height = init.readUInt16BE(2);
    this.serverPixelFormat = Buffer.from(init.subarray(4, 20));
    this.name = (await this.read(init.readUInt32BE(20))).toString('utf8');
    this.format = Buffer.from(this.serverPixelFormat);
    this.rgb = new Uint8Array(this.width * this.height * 3);
    this.startFraming();
  }

  private async readString(): Promise<string> {
    const length = (await this.read(4)).readUInt32BE(0);
    return (await this.read(length)).toString('utf8');
  }

  private startFraming(): void {
    const bpp = this.format[0]! / 8;
    const tight = bpp === 4 && this.format[1] === 24 ? 3 : bpp;
    this.framer = new ServerMessageFramer({ end: (m) => this.message(m) }, { bytesPerPixel: bpp, tightPixelBytes: tight });
    this.pendingStart = this.framer.position;
    const rest = Buffer.concat(this.buffered);
    this.buffered.length = 0;
    this.bufferedBytes = 0;
    this.socket.removeAllListeners('data');
    this.socket.on('data', (data: Buffer) => this.receive(data));
    if (rest.length > 0) this.receive(rest);
  }

  private receive(data: Buffer): void {
    this.pending.push(data);
    this.framer.push(data);
  }

  private message(message: RfbServerMessage): void {
    const all = Buffer.concat(this.pending);
    const bytes = all.subarray(message.start - this.pendingStart, message.end - this.pendingStart);
    this.pending = [all.subarray(message.end - this.pendingStart)];
    this.pendingStart = message.end;
    this.messages++;
    if (message.type === 2) this.bell++;
    if (message.type === 3) this.serverCutText.push(bytes.subarray(8).toString('latin1'));
    for (const rect of message.rectangles) {
      this.encodingsSeen.add(rect.encoding);
      this.rectangle(
        rect.encoding,
        rect.x,
        rect.y,
        rect.width,
        rect.height,
        bytes.subarray(rect.start - message.start + 12, rect.end - message.start),
      );
    }
    for (const l of this.listeners) l();
  }

  private rectangle(encoding: number, x: number, y: number, w: number, h: number, body: Buffer): void {
    if (encoding === 0) {
      const bpp = this.format[0]! / 8;
      for (let row = 0; row < h; row++)
        for (let col = 0; col < w; col++) this.setPixel(x + col, y + row, this.decodePixel(body, (row * w + col) * bpp));
    } else if (encoding === 1) {
      const sx = body.readUInt16BE(0);
      const sy = body.readUInt16BE(2);
      const copy = this.rgb.slice();
      for (let row = 0; row < h; row++)
        for (let col = 0; col < w; col++) {
          const from = ((sy + row) * this.width + sx + col) * 3;
          this.setPixel(x + col, y + row, { r: copy[from]!, g: copy[from + 1]!, b: copy[from + 2]! });
        }
    } else if (encoding === -223 || encoding === -308) {
      this.width = w;
      this.height = h;
      this.rgb = new Uint8Array(w * h * 3);
    }
  }

  private decodePixel(body: Buffer, offset: number): RgbColour {
    const f = this.format;
    const bpp = f[0]! / 8;
    const big = f[2] !== 0;
    const value =
      bpp === 4
        ? big
          ? body.readUInt32BE(offset)
          : body.readUInt32LE(offset)
        : bpp === 2
          ? big
            ? body.readUInt16BE(offset)
            : body.readUInt16LE(offset)
          : body[offset]!;
    const channel = (max: number, shift: number) => Math.round((((value >>> shift) & max) * 255) / max);
    return { r: channel(f.readUInt16BE(4), f[10]!), g: channel(f.readUInt16BE(6), f[11]!), b: channel(f.readUInt16BE(8), f[12]!) };
  }

  private setPixel(x: number, y: number, c: RgbColour): void {
    if (x >= this.width || y >= this.height) return;
    const i = (y * this.width + x) * 3;
    this.rgb[i] = c.r;
    this.rgb[i + 1] = c.g;
    this.rgb[i + 2] = c.b;
  }

  /** The colour of one pixel of the framebuffer as received so far. */
  colourAt(x: number, y: number): RgbColour {
    const i = (y * this.width + x) * 3;
    return { r: this.rgb[i]!, g: this.rgb[i + 1]!, b: this.rgb[i + 2]! };
  }

  /** Asks for a pixel format; later Raw rectangles are decoded in it. */
  setPixelFormat(format: Uint8Array): void {
    const message = Buffer.alloc(20);
    message.set(format, 4);
    this.socket.write(message);
    this.format = Buffer.from(format);
    this.pending = [];
    const bpp = this.format[0]! / 8;
    // Messages already on their way are in the old format: only call this before the first update request.
    this.framer = new ServerMessageFramer(
      { end: (m) => this.message(m) },
      { bytesPerPixel: bpp, tightPixelBytes: bpp === 4 && this.format[1] === 24 ? 3 : bpp },
    );
    this.pendingStart = this.framer.position;
  }

  setEncodings(encodings: number[]): void {
    const message = Buffer.alloc(4 + 4 * encodings.length);
    message[0] = 2;
    message.writeUInt16BE(encodings.length, 2);
    encodings.forEach((e, i) => message.writeInt32BE(e, 4 + 4 * i));
    this.socket.write(message);
  }

  requestUpdate(incremental = false, x = 0, y = 0, width = this.width, height = this.height): void {
    const message = Buffer.alloc(10);
    message[0] = 3;
    message[1] = incremental ? 1 : 0;
    message.writeUInt16BE(x, 2);
    message.writeUInt16BE(y, 4);
    message.writeUInt16BE(width, 6);
    message.writeUInt16BE(height, 8);
    this.socket.write(message);
  }

  key(keysym: number, down: boolean): void {
    const message = Buffer.alloc(8);
    message[0] = 4;
    message[1] = down ? 1 : 0;
    message.writeUInt32BE(keysym, 4);
    this.socket.write(message);
  }

  pointer(x: number, y: number, buttons = 0): void {
    const message = Buffer.alloc(6);
    message[0] = 5;
    message[1] = buttons;
    message.writeUInt16BE(x, 2);
    message.writeUInt16BE(y, 4);
    this.socket.write(message);
  }

  cutText(text: string): void {
    const bytes = Buffer.from(text, 'latin1');
    const message = Buffer.alloc(8 + bytes.length);
    message[0] = 6;
    message.writeUInt32BE(bytes.length, 4);
    bytes.copy(message, 8);
    this.socket.write(message);
  }

  /** Resolves once `done()` is true, re-checked after every server message; rejects when the connection closes first or after `timeoutMs`. */
  waitFor(done: () => boolean, timeoutMs = 10_000): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`Timed out after ${timeoutMs} ms waiting on the VNC server.`)), timeoutMs);
      const check = () => {
        if (done()) finish();
        else if (this.closed) finish(new Error('The VNC server closed the connection.'));
      };
      const finish = (error?: Error) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        if (error) reject(error);
        else resolve();
      };
      this.listeners.add(check);
    });
  }

  /** Requests full updates until the pixel at (x, y) has `colour`. */
  async waitForColour(x: number, y: number, colour: RgbColour, tolerance = 8, timeoutMs = 10_000): Promise<void> {
    const near = () => {
      const c = this.colourAt(x, y);
      return Math.abs(c.r - colour.r) <= tolerance && Math.abs(c.g - colour.g) <= tolerance && Math.abs(c.b - colour.b) <= tolerance;
    };
    const deadline = Date.now() + timeoutMs;
    // A full update at a time: the desktop may change colour after the first one.
    while (!near()) {
      if (Date.now() > deadline)
        throw new Error(`The pixel at ${x},${y} is ${JSON.stringify(this.colourAt(x, y))}, not ${JSON.stringify(colour)}.`);
      const before = this.messages;
      this.requestUpdate(false);
      await this.waitFor(() => this.messages > before, Math.max(1, deadline - Date.now()));
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}
