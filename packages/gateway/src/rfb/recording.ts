import { mkdir, open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { encodeRfbHeader, type RfbRecordingHeader } from '@gatehouse/core';

/** Bytes batched before they go to the file, and the longest they wait. */
const FLUSH_BYTES = 1024 * 1024;
const FLUSH_MS = 250;

/** Where a desktop session's recording goes, relative to the recordings directory: `YYYY-MM-DD/<id>.rfb`. */
export function rfbRecordingPath(sessionId: string, startedAt: Date): string {
  return path.posix.join(startedAt.toISOString().slice(0, 10), `${sessionId}.rfb`);
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

  /** Records what the device sent (a frame stamped now). */
  write(data: Buffer): void {
    if (this.closing || this.failed || data.length === 0) return;
    const head = Buffer.alloc(8);
    head.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(performance.now() - this.origin))), 0);
    head.writeUInt32BE(data.length, 4);
    // A copy: the caller's buffer may be reused once write returns.
    this.batch.push(head, Buffer.from(data));
    this.batchBytes += 8 + data.length;
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
