import { readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { StorageTarget } from '@gatehouse/breakglass';
import type { RecordingSignature } from '@gatehouse/core';
import type { Logger } from '../logger.js';
import { signatureFileOf } from './recording-signatures.js';
import { abortParts, MIN_PART_BYTES, partsFileOf, RecordingStream } from './recording-stream.js';

export interface RecordingUploadsOptions {
  /** The recordings' bucket or container (its own, not break glass's), with its own key. */
  target: StorageTarget;
  recordingsDir: string;
  /** Object names start with this. */
  prefix: string;
  /** Keep the local copy after the upload is confirmed (default: remove it). */
  keepLocal: boolean;
  /** Waits between tries of one upload; the last repeats until the store answers. */
  retryDelaysMs: readonly number[];
  /** Records that a session's recording is in the store (its object name). */
  stored: (sessionId: string, objectName: string) => Promise<void>;
  logger: Logger;
  /** Told the backlog (recordings waiting or uploading) whenever it changes. */
  onBacklog?: (backlog: number) => void;
  /** Recordings written here go to the store in parts of this many bytes while they are written (default and least: 5 MiB). */
  partBytes?: number;
  /** How often a recording being written is looked at for a new part (default 1 s). */
  partPollMs?: number;
}

/**
 * Uploads each signed recording and its `.sig` to the recordings' object store, one at a
 * time in the order they finished, retrying each with backoff until the store takes it.
 * A recording written here (`started`) goes in parts while the session runs; once signed
 * its last part is sent and the object committed, then its `.sig`; one shorter than a part
 * is uploaded whole. The local copy stays until the store confirmed both objects, then
 * goes (unless `keepLocal`): a store down for a while costs nothing but the wait.
 */
export class RecordingUploads {
  private readonly queue: { sessionId: string; file: string }[] = [];
  private readonly queued = new Set<string>();
  private readonly streams = new Map<string, RecordingStream>();
  private running: Promise<void> | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(private readonly o: RecordingUploadsOptions) {}

  /** Recordings waiting or uploading. */
  get backlog(): number {
    return this.queue.length;
  }

  /** Queues a signed recording or SFTP log (its file and `.sig` whole on disk); a second call for one queued is ignored. */
  add(sessionId: string, file: string): void {
    if (this.stopped || this.queued.has(sessionId)) return;
    this.queued.add(sessionId);
    this.queue.push({ sessionId, file });
    this.o.onBacklog?.(this.queue.length);
    this.running ??= this.drain().finally(() => (this.running = undefined));
  }

  /** A session started writing its recording here (`relative` to the recordings directory): its parts go to the store as they accumulate. */
  started(sessionId: string, relative: string): void {
    const file = path.resolve(this.o.recordingsDir, relative);
    if (this.stopped || this.streams.has(sessionId) || !file.startsWith(`${this.o.recordingsDir}${path.sep}`)) return;
    this.streamOf(sessionId, file).start();
  }

  private streamOf(sessionId: string, file: string, replacing = false): RecordingStream {
    const stream = new RecordingStream({
      target: this.o.target,
      sessionId,
      file,
      name: this.objectName(file),
      contentType: contentTypeOf(file),
      partBytes: Math.max(MIN_PART_BYTES, this.o.partBytes ?? MIN_PART_BYTES),
      pollMs: this.o.partPollMs ?? 1000,
      retryDelaysMs: this.o.retryDelaysMs,
      logger: this.o.logger,
      replacing,
    });
    this.streams.set(sessionId, stream);
    return stream;
  }

  /** Parts of a recording being written that the store has confirmed (for tests and metrics). */
  partsSent(sessionId: string): number {
    return this.streams.get(sessionId)?.parts ?? 0;
  }

  /** Resolves when the queue is empty (for tests and shutdown with a store up). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Stops after the current try; what is left is queued again at the next start (its row says not stored). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    await Promise.all([...this.streams.values()].map((s) => s.stop()));
  }

  /** The object name of a recording: the prefix and its path under the recordings directory. */
  objectName(file: string): string {
    return `${this.o.prefix}${path.relative(this.o.recordingsDir, file).split(path.sep).join('/')}`;
  }

  private async drain(): Promise<void> {
    while (!this.stopped && this.queue.length > 0) {
      const next = this.queue[0];
      if (!next) break;
      await this.uploadWithRetries(next.sessionId, next.file);
      this.queue.shift();
      this.queued.delete(next.sessionId);
      this.o.onBacklog?.(this.queue.length);
    }
  }

  private async uploadWithRetries(sessionId: string, file: string): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.upload(sessionId, file);
        return;
      } catch (error) {
        const delays = this.o.retryDelaysMs;
        const delay = delays[Math.min(attempt, delays.length - 1)] ?? 60_000;
        this.o.logger.warn(
          { err: error, sessionId, attempt: attempt + 1, retryInMs: delay },
          'could not upload a recording to its store; the local copy stays and the upload is retried',
        );
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }

  private async upload(sessionId: string, file: string): Promise<void> {
    const name = this.objectName(file);
    const sig = signatureFileOf(file);
    const size = await stat(file).then(
      (s) => s.size,
      () => undefined,
    );
    // Gone already (uploaded and removed by another replica, or by an earlier run): nothing to do.
    if (size === undefined) return;
    // An upload in parts an earlier process left open (killed mid-session) is aborted, and
    // the recording sent again in new parts: their commit also drops Azure's staged blocks.
    const stream = this.streams.get(sessionId) ?? ((await this.abortLeftParts(file)) ? this.streamOf(sessionId, file, true) : undefined);
    const signed = stream ? (JSON.parse(await readFile(sig, 'utf8')) as RecordingSignature) : undefined;
    if (stream && signed && (await stream.finish(signed))) {
      // Committed from its parts; the signature after it.
      await this.o.target.putFile(`${name}.sig`, sig, (await stat(sig)).size, 'application/json');
    } else {
      // The signature first: a recording uploaded whole always has its signature beside it.
      await this.o.target.putFile(`${name}.sig`, sig, (await stat(sig)).size, 'application/json');
      await this.o.target.putFile(name, file, size, contentTypeOf(file));
    }
    this.streams.delete(sessionId);
    await this.o.stored(sessionId, name);
    await rm(partsFileOf(file), { force: true });
    if (!this.o.keepLocal) {
      await rm(file, { force: true });
      await rm(sig, { force: true });
    }
  }

  /** Aborts the upload in parts that an earlier process left open for `file`; true when there was one. */
  private async abortLeftParts(file: string): Promise<boolean> {
    const left = await readFile(partsFileOf(file), 'utf8').then(
      (text) => JSON.parse(text) as { name: string; uploadId: string },
      () => undefined,
    );
    if (!left) return false;
    await abortParts(this.o.target, left.name, left.uploadId, this.o.logger);
    await rm(partsFileOf(file), { force: true });
    return true;
  }
}

function contentTypeOf(file: string): string {
  return file.endsWith('.rfb')
    ? 'application/vnd.gatehouse.rfb-recording'
    : file.endsWith('.jsonl')
      ? 'application/x-ndjson'
      : 'application/x-asciicast';
}
