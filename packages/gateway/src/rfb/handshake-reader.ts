import type { Duplex } from 'node:stream';

/** Why a handshake read gave up: the peer was silent too long, or closed the connection. */
export class HandshakeReadError extends Error {
  constructor(readonly kind: 'timeout' | 'closed') {
    super(kind === 'timeout' ? 'the peer did not answer in time' : 'the peer closed the connection');
    this.name = 'HandshakeReadError';
  }
}

/**
 * Reads exact byte counts from a socket during an RFB handshake, each read bounded by a
 * deadline. `release()` stops reading and puts what arrived beyond the handshake back into
 * the socket, so the proxy that takes over next sees every byte.
 */
export class HandshakeReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiting: { bytes: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private ended: HandshakeReadError | undefined;
  private readonly onData = (chunk: Buffer) => {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.satisfy();
  };
  private readonly onEnd = () => {
    this.ended = new HandshakeReadError('closed');
    this.satisfy();
  };

  constructor(
    readonly socket: Duplex,
    private readonly timeoutMs: number,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onEnd);
  }

  async read(bytes: number): Promise<Buffer> {
    if (bytes === 0) return Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<Buffer>((resolve, reject) => {
        this.waiting = { bytes, resolve, reject };
        timer = setTimeout(() => {
          this.waiting = undefined;
          reject(new HandshakeReadError('timeout'));
        }, this.timeoutMs);
        this.satisfy();
      });
    } finally {
      clearTimeout(timer);
    }
  }

  async readU8(): Promise<number> {
    return (await this.read(1)).readUInt8(0);
  }

  async readU32(): Promise<number> {
    return (await this.read(4)).readUInt32BE(0);
  }

  /** A u32 length and that many bytes of text (a failure reason, a desktop name), at most `limit`. */
  async readString(limit = 64 * 1024): Promise<string> {
    const length = await this.readU32();
    if (length > limit) throw new HandshakeReadError('closed');
    return (await this.read(length)).toString('utf8');
  }

  private satisfy(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    if (this.buffered >= waiting.bytes) {
      this.waiting = undefined;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const rest = all.subarray(waiting.bytes);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      waiting.resolve(all.subarray(0, waiting.bytes));
    } else if (this.ended) {
      this.waiting = undefined;
      waiting.reject(this.ended);
    }
  }

  /** Stops reading; bytes read ahead go back to the socket, which is left paused. */
  release(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onEnd);
    // Whoever takes the socket over listens for errors itself; until then one must not crash the process.
    this.socket.on('error', ignoreError);
    this.socket.pause();
    if (this.buffered > 0) this.socket.unshift(Buffer.concat(this.chunks));
    this.chunks = [];
    this.buffered = 0;
  }
}

function ignoreError(): void {}
