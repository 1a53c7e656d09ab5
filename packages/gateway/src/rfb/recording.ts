import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { encodeRfbHeader, type RfbRecordingHeader } from '@gatehouse/core';

/** Bytes batched before they go to the file, and the longest they wait. */
const FLUSH_BYTES = 1024 * 1024;
const FLUSH_MS = 250;
/**
 * Parts smaller than this are copied into the batch; larger ones are kept as they are (no
 * copy of a framebuffer update). A small part is usually a slice of a 64 KiB socket read,
 * which it would otherwise keep alive until the batch is written.
 */
const COPY_BELOW_BYTES = 16 * 1024;

/** Where a desktop session's recording goes, relative to the recordings directory: `YYYY-MM-DD/<id>.rfb`. */
export function rfbRecordingPath(sessionId: string, startedAt: Date): string {
  return path.posix.join(startedAt.toISOString().slice(0, 10), `${sessionId}.rfb`);
}

/** How much of a recording `repairRfbRecording` reads at a time while it walks the frames. */
const REPAIR_READ_BYTES = 64 * 1024;

/**
 * Makes a recording that was cut off (the process was killed mid-write) whole again: cuts
 * it back to its last whole frame, so every frame the file holds is complete. Answers how
 * many bytes went. A file without a whole header line is left as it is (nothing in it can
 * be played).
 */
export async function repairRfbRecording(file: string): Promise<number> {
  const handle = await open(file, 'r+');
  try {
    const { size } = await handle.stat();
    let window = Buffer.alloc(Math.min(size, REPAIR_READ_BYTES));
    let windowStart = 0;
    await handle.read(window, 0, window.length, 0);
    const newline = window.indexOf(0x0a);
    if (newline < 0) return 0;
    let offset = newline + 1;
    // Only the frames' 8-byte heads are read: where the next frame starts, and whether it ends in the file.
    while (offset + 8 <= size) {
      if (offset + 8 > windowStart + window.length) {
        window = Buffer.alloc(Math.min(size - offset, REPAIR_READ_BYTES));
        windowStart = offset;
        await handle.read(window, 0, window.length, offset);
      }
      const next = offset + 8 + window.readUInt32BE(offset - windowStart + 4);
      if (next > size) break;
      offset = next;
    }
    if (offset === size) return 0;
    await handle.truncate(offset);
    return size - offset;
  } finally {
    await handle.close();
  }
}

/**
 * Writes an RFB recording (the format in @gatehouse/core/rfb-recording): the header line,
 * then one frame per write, stamped with the milliseconds since the header's `startedAt`.
 * Writes are batched and appended in the background, so the relay never waits for the disk;
 * `close()` waits until everything is written. A failed write stops the recording (the
 * session goes on) and `close()` reports it.
 */
export class RfbRecorder {
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private failed: Error | undefined;
  private closing: Promise<void> | undefined;
  /** performance.now() at `startedAt`. */
  private readonly origin: number;

  private constructor(
    readonly file: string,
    private readonly handle: FileHandle,
    startedAt: string,
  ) {
    this.origin = performance.now() - (Date.now() - Date.parse(startedAt));
  }

  /** Creates the file (mode 0600, its directory 0700) with the header. */
  static async open(recordingsDir: string, relativePath: string, header: RfbRecordingHeader): Promise<RfbRecorder> {
    const file = path.join(recordingsDir, relativePath);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const handle = await open(file, 'wx', 0o600);
    try {
      await handle.write(encodeRfbHeader(header));
    } catch (error) {
      await handle.close();
      throw error;
    }
    return new RfbRecorder(file, handle, header.startedAt);
  }

  /**
   * Records what the device sent (one frame stamped now): a message, or its parts in order.
   * Parts of 16 KiB and more are kept, not copied, until they are written: the caller must
   * not change them afterwards (socket reads never are).
   */
  write(data: Buffer | readonly Buffer[]): void {
    if (this.closing || this.failed) return;
    const parts = Buffer.isBuffer(data) ? [data] : data;
    let length = 0;
    for (const part of parts) length += part.length;
    if (length === 0) return;
    const head = Buffer.allocUnsafe(8);
    head.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(performance.now() - this.origin))), 0);
    head.writeUInt32BE(length, 4);
    this.batch.push(head);
    for (const part of parts) if (part.length > 0) this.batch.push(part.length < COPY_BELOW_BYTES ? Buffer.from(part) : part);
    this.batchBytes += 8 + length;
    if (this.batchBytes >= FLUSH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    this.writing = this.writing.then(async () => {
      if (this.failed) return;
      try {
        await this.handle.writev(batch);
      } catch (error) {
        this.failed = error as Error;
      }
    });
  }

  /** Writes what is batched and closes the file; rejects when a write failed. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.flush();
      await this.writing;
      await this.handle.close();
      if (this.failed) throw this.failed;
    })();
    return this.closing;
  }
}
