import { mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export interface AsciicastHeader {
  width: number;
  height: number;
  /** Unix time of the start, in seconds. */
  timestamp: number;
  term: string;
  /** The exec command, for non-interactive sessions. */
  command?: string | undefined;
  title?: string | undefined;
}

/** Bytes buffered before a write; terminal output is many small packets. */
const FLUSH_BYTES = 1024 * 1024;
const FLUSH_MS = 250;
/** Recorded bytes not yet on disk above which the session should wait for the disk. */
const MAX_BACKLOG = 8 * 1024 * 1024;

/**
 * Writes an asciicast v2 recording (https://docs.asciinema.org/manual/asciicast/v2/):
 * a header line, then `[seconds, "o" | "i", text]` lines. Events are batched in memory
 * and written in large chunks; `close()` writes what is left and closes the file. Output
 * split inside a UTF-8 sequence is held back until the sequence is whole.
 */
export class AsciicastRecorder {
  private readonly started = performance.now();
  private pending: string[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly partial: Record<'o' | 'i', Buffer> = { o: Buffer.alloc(0), i: Buffer.alloc(0) };
  private failed: Error | undefined;
  private inFlight = 0;
  private waiters: (() => void)[] = [];

  private constructor(
    readonly file: string,
    private readonly handle: FileHandle,
  ) {}

  /** Creates the file (mode 0600, its directory 0700) and writes the header. */
  static async create(file: string, header: AsciicastHeader): Promise<AsciicastRecorder> {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // O_EXCL: a recording is never overwritten.
    const handle = await open(file, 'wx', 0o600);
    const recorder = new AsciicastRecorder(file, handle);
    const line: Record<string, unknown> = {
      version: 2,
      width: Math.max(1, Math.floor(header.width)),
      height: Math.max(1, Math.floor(header.height)),
      timestamp: Math.floor(header.timestamp),
      env: { TERM: header.term },
    };
    if (header.command !== undefined) line.command = header.command;
    if (header.title !== undefined) line.title = header.title;
    recorder.push(`${JSON.stringify(line)}\n`);
    return recorder;
  }

  /**
   * True when more than MAX_BACKLOG recorded bytes wait for the disk: the caller pauses
   * the stream it records until drained() resolves, so a fast transfer cannot pile up in
   * memory ahead of a slower disk.
   */
  get congested(): boolean {
    return this.failed === undefined && this.inFlight + this.pendingBytes > MAX_BACKLOG;
  }

  /** Resolves when the backlog is under the limit again (at once when it is). */
  drained(): Promise<void> {
    return this.congested ? new Promise((resolve) => this.waiters.push(resolve)) : Promise.resolve();
  }

  private release(): void {
    if (this.congested) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  output(data: Buffer): void {
    this.event('o', data);
  }

  input(data: Buffer): void {
    this.event('i', data);
  }

  /** A terminal size change, as a resize (`"r"`) event. */
  resize(cols: number, rows: number): void {
    if (this.closed) return;
    this.push(`${JSON.stringify([this.elapsed(), 'r', `${Math.floor(cols)}x${Math.floor(rows)}`])}\n`);
  }

  private elapsed(): number {
    return Math.round(performance.now() - this.started) / 1000;
  }

  private event(kind: 'o' | 'i', data: Buffer): void {
    if (this.closed || data.length === 0) return;
    const bytes = this.partial[kind].length > 0 ? Buffer.concat([this.partial[kind], data]) : data;
    const whole = completeUtf8Length(bytes);
    this.partial[kind] = bytes.subarray(whole);
    if (whole === 0) return;
    this.push(`${JSON.stringify([this.elapsed(), kind, bytes.toString('utf8', 0, whole)])}\n`);
  }

  private push(line: string): void {
    this.pending.push(line);
    this.pendingBytes += line.length;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const chunk = this.pending.join('');
    this.pending = [];
    this.pendingBytes = 0;
    this.inFlight += chunk.length;
    this.writing = this.writing
      .then(() => this.handle.write(chunk))
      .then(
        () => undefined,
        (error: Error) => {
          this.failed ??= error;
        },
      )
      .finally(() => {
        this.inFlight -= chunk.length;
        this.release();
      });
  }

  /** Writes what is buffered (a trailing partial UTF-8 sequence as U+FFFD) and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return this.writing;
    for (const kind of ['o', 'i'] as const) {
      if (this.partial[kind].length > 0) {
        const rest = this.partial[kind];
        this.partial[kind] = Buffer.alloc(0);
        this.push(`${JSON.stringify([this.elapsed(), kind, rest.toString('utf8')])}\n`);
      }
    }
    this.closed = true;
    this.flush();
    await this.writing;
    await this.handle.close();
    if (this.failed) throw this.failed;
  }
}

/** How many leading bytes of `b` end on a UTF-8 character boundary. */
function completeUtf8Length(b: Buffer): number {
  // Look back at most 3 bytes for the lead byte of an unfinished sequence.
  for (let back = 1; back <= Math.min(3, b.length); back++) {
    const byte = b[b.length - back] as number;
    if ((byte & 0xc0) === 0x80) continue; // continuation byte: keep looking
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? b.length - back : b.length;
  }
  return b.length;
}

/**
 * Makes a recording that was cut off (the process was killed mid-write) valid again:
 * drops a last line that is not whole, so every line parses. Answers how many bytes went.
 */
export async function repairRecording(file: string): Promise<number> {
  const handle = await open(file, 'r+');
  try {
    const { size } = await handle.stat();
    if (size === 0) return 0;
    // A line is at most one batch long; look back far enough to find its start.
    const window = Math.min(size, FLUSH_BYTES * 4);
    const tail = Buffer.alloc(window);
    await handle.read(tail, 0, window, size - window);
    if (tail[window - 1] === 0x0a) return 0;
    const lastNewline = tail.lastIndexOf(0x0a);
    const keep = lastNewline < 0 ? 0 : size - window + lastNewline + 1;
    await handle.truncate(keep);
    return size - keep;
  } finally {
    await handle.close();
  }
}
