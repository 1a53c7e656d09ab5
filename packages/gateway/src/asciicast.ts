import { existsSync, mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { EVENT_HEADER_BYTES, writeEvent, type EventKind, type WriterReply, type WriterRequest } from './asciicast-writer.js';
import { GatehouseError } from '@gatehouse/core';

export interface AsciicastHeader {
  width: number;
  height: number;
  /** Unix time of the start, in seconds. */
  timestamp: number;
  /** The terminal type; none for an exec without a terminal. */
  term?: string | undefined;
  /** The exec command, for non-interactive sessions. */
  command?: string | undefined;
  title?: string | undefined;
}

/** Bytes batched before they go to the writer thread; terminal output is many small packets. */
const FLUSH_BYTES = 1024 * 1024;
const SMALL_BATCH_BYTES = 64 * 1024;
const FLUSH_MS = 250;
/** Recorded bytes not yet on disk above which the session should wait for the disk. */
const MAX_BACKLOG = 8 * 1024 * 1024;

/**
 * Writes an asciicast v2 recording (https://docs.asciinema.org/manual/asciicast/v2/):
 * a header line, then `[seconds, "o" | "i" | "r", text]` lines. The session's thread only
 * copies the recorded bytes, with their time, into a batch; full batches (or every 250 ms)
 * go to one writer thread for the whole process (asciicast-writer.ts), which encodes and
 * writes them, so recording a fast transfer does not slow down the relay. `close()` waits
 * until everything is on disk. Output split inside a UTF-8 sequence is held back until the
 * sequence is whole.
 */
export class AsciicastRecorder {
  private readonly started = performance.now();
  private batch: Buffer | undefined;
  private batchLength = 0;
  /** The size of the next batch: small while the output is slow (a shell), large when it is fast. */
  private batchBytes = SMALL_BATCH_BYTES;
  private timer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;
  private failed: Error | undefined;
  /** Bytes handed to the writer thread that it has not written yet. */
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  /**
   * After close(): the file's length, how much of it was written past the page cache, and
   * its SHA-256 as written (none when a write failed).
   */
  written: { bytes: number; directBytes: number; sha256?: string | undefined } | undefined;
  /** The open or close waiting for the writer's answer. */
  private settle: ((error?: Error) => void) | undefined;

  private constructor(
    readonly file: string,
    private readonly id: number,
    private readonly thread: WriterThread,
  ) {}

  /** Creates the file (mode 0600, its directory 0700) and writes the header. */
  static async create(file: string, header: AsciicastHeader): Promise<AsciicastRecorder> {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const line: Record<string, unknown> = {
      version: 2,
      width: Math.max(1, Math.floor(header.width)),
      height: Math.max(1, Math.floor(header.height)),
      timestamp: Math.floor(header.timestamp),
    };
    if (header.term !== undefined) line.env = { TERM: header.term };
    if (header.command !== undefined) line.command = header.command;
    if (header.title !== undefined) line.title = header.title;
    const thread = writerThread();
    const recorder = thread.add((id) => new AsciicastRecorder(file, id, thread));
    try {
      await recorder.request({ op: 'open', id: recorder.id, file, header: `${JSON.stringify(line)}\n` });
    } catch (error) {
      thread.remove(recorder.id);
      throw error;
    }
    return recorder;
  }

  /**
   * True when more than MAX_BACKLOG recorded bytes wait for the disk: the caller pauses
   * the stream it records until drained() resolves, so a fast transfer cannot pile up in
   * memory ahead of a slower disk.
   */
  get congested(): boolean {
    return this.failed === undefined && this.inFlight + this.batchLength > MAX_BACKLOG;
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

  /** A marker (`"m"`): a note of the gateway's own, which players show on the time line. */
  marker(label: string): void {
    this.event('m', Buffer.from(label, 'utf8'));
  }

  /** A terminal size change, as a resize (`"r"`) event. */
  resize(cols: number, rows: number): void {
    this.event('r', Buffer.from(`${Math.floor(cols)}x${Math.floor(rows)}`, 'latin1'));
  }

  private elapsed(): number {
    return Math.round(performance.now() - this.started) / 1000;
  }

  private event(kind: EventKind, data: Buffer): void {
    if (this.closing || this.failed || data.length === 0) return;
    const size = EVENT_HEADER_BYTES + data.length;
    if (this.batch && this.batchLength + size > this.batch.length) {
      // A full batch: output is fast, so the next ones are large.
      this.batchBytes = FLUSH_BYTES;
      this.flush();
    }
    // Not from Node's shared pool: the batch's memory is handed to the writer thread as it is.
    this.batch ??= Buffer.allocUnsafeSlow(Math.max(this.batchBytes, size));
    this.batchLength = writeEvent(this.batch, this.batchLength, kind, this.elapsed(), data);
    this.timer ??= setTimeout(() => {
      this.batchBytes = SMALL_BATCH_BYTES;
      this.flush();
    }, FLUSH_MS);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const { batch, batchLength } = this;
    if (!batch || batchLength === 0) return;
    this.batch = undefined;
    this.batchLength = 0;
    this.inFlight += batchLength;
    this.thread.post({ op: 'append', id: this.id, batch: batch.buffer as ArrayBuffer, length: batchLength }, [batch.buffer as ArrayBuffer]);
  }

  private request(message: WriterRequest): Promise<void> {
    if (!this.thread.alive) return Promise.reject(this.failed ?? new GatehouseError('INTERNAL', 'The recording writer thread stopped.'));
    return new Promise((resolve, reject) => {
      this.settle = (error) => {
        this.settle = undefined;
        if (error) reject(error);
        else resolve();
      };
      this.thread.post(message);
    });
  }

  /** An answer from the writer thread. */
  receive(reply: WriterReply): void {
    switch (reply.op) {
      case 'written':
        this.inFlight -= reply.bytes;
        this.release();
        return;
      case 'failed':
        this.fail(new GatehouseError('INTERNAL', reply.message));
        return;
      case 'closed':
        this.written = { bytes: reply.bytes, directBytes: reply.directBytes, sha256: reply.sha256 };
        this.settle?.();
        return;
      case 'opened':
        this.settle?.();
        return;
    }
  }

  /** The recording cannot be written (any further): what waits is let go. */
  fail(error: Error): void {
    this.failed ??= error;
    this.inFlight = 0;
    this.settle?.(this.failed);
    this.release();
  }

  /** Writes what is batched (a trailing partial UTF-8 sequence as U+FFFD) and closes the file. */
  async close(): Promise<void> {
    this.closing ??= (async () => {
      this.flush();
      try {
        // Also after a failed write: the writer closes the file.
        await this.request({ op: 'close', id: this.id, seconds: this.elapsed() });
      } catch (error) {
        this.failed ??= error as Error;
      } finally {
        this.thread.remove(this.id);
      }
      if (this.failed) throw this.failed;
    })();
    return this.closing;
  }
}

/** The one writer thread of the process; started with the first recording. */
class WriterThread {
  private readonly worker: Worker;
  private readonly recorders = new Map<number, AsciicastRecorder>();
  private nextId = 1;
  alive = true;

  constructor() {
    this.worker = new Worker(writerUrl());
    this.worker.unref();
    this.worker.on('message', (reply: WriterReply) => this.recorders.get(reply.id)?.receive(reply));
    const gone = (error: Error) => {
      this.alive = false;
      if (sharedThread === this) sharedThread = undefined;
      for (const recorder of this.recorders.values()) recorder.fail(error);
      this.recorders.clear();
    };
    this.worker.on('error', gone);
    this.worker.on('exit', (code) => gone(new GatehouseError('INTERNAL', `The recording writer thread stopped (exit code ${code}).`)));
  }

  add(make: (id: number) => AsciicastRecorder): AsciicastRecorder {
    const id = this.nextId++;
    const recorder = make(id);
    // While a recording is open, the thread keeps the process alive: it holds unwritten bytes.
    if (this.recorders.size === 0) this.worker.ref();
    this.recorders.set(id, recorder);
    return recorder;
  }

  remove(id: number): void {
    if (this.recorders.delete(id) && this.recorders.size === 0) this.worker.unref();
  }

  post(message: WriterRequest, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }
}

let sharedThread: WriterThread | undefined;

function writerThread(): WriterThread {
  sharedThread ??= new WriterThread();
  return sharedThread;
}

/** The compiled writer beside this module; from the TypeScript sources (unit tests), the built one. */
function writerUrl(): URL {
  const sibling = new URL('./asciicast-writer.js', import.meta.url);
  return existsSync(sibling) ? sibling : new URL('../dist/asciicast-writer.js', import.meta.url);
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
