import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { StorageTarget } from '@gatehouse/breakglass';
import type { Logger } from '../logger.js';
import { signatureFileOf } from './recording-signatures.js';

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
}

/**
 * Uploads each signed recording and its `.sig` to the recordings' object store, one at a
 * time in the order they finished, retrying each with backoff until the store takes it.
 * The local copy stays until the store confirmed both objects, then goes (unless
 * `keepLocal`): a store down for a while costs nothing but the wait.
 */
export class RecordingUploads {
  private readonly queue: { sessionId: string; file: string }[] = [];
  private readonly queued = new Set<string>();
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

  /** Resolves when the queue is empty (for tests and shutdown with a store up). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Stops after the current try; what is left is queued again at the next start (its row says not stored). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
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
    const contentType = file.endsWith('.rfb')
      ? 'application/vnd.gatehouse.rfb-recording'
      : file.endsWith('.jsonl')
        ? 'application/x-ndjson'
        : 'application/x-asciicast';
    // The signature first: a recording in the store always has its signature beside it.
    await this.o.target.putFile(`${name}.sig`, sig, (await stat(sig)).size, 'application/json');
    await this.o.target.putFile(name, file, size, contentType);
    await this.o.stored(sessionId, name);
    if (!this.o.keepLocal) {
      await rm(file, { force: true });
      await rm(sig, { force: true });
    }
  }
}
