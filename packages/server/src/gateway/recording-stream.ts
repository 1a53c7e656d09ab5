import { createHash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { PartsAbortRefused, type StorageTarget } from '@gatehouse/breakglass';
import { GatehouseError } from '@gatehouse/core';
import type { Logger } from '../logger.js';
import { writeFileAtomically } from './recording-signatures.js';

/** The smallest part S3 takes (all but the last). */
export const MIN_PART_BYTES = 5 * 1024 * 1024;

/** Beside a recording while its upload in parts is open: `{ name, uploadId }`, so a later start can abort it. */
export const partsFileOf = (recording: string) => `${recording}.upload`;

export interface RecordingStreamOptions {
  target: StorageTarget;
  sessionId: string;
  file: string;
  /** The object name. */
  name: string;
  contentType: string;
  /** Every part but the last has this many bytes (at least MIN_PART_BYTES). */
  partBytes: number;
  /** How often the file is looked at for a new whole part. */
  pollMs: number;
  /** Waits after a failed part, as for whole uploads; the last repeats. */
  retryDelaysMs: readonly number[];
  logger: Logger;
  /** It replaces an upload in parts left open by an earlier process: sent in parts even when shorter than one. */
  replacing?: boolean;
}

/**
 * One recording sent to the store in parts while the session writes it: whenever a whole
 * part has accumulated past what the store has, it is uploaded (a failed one again after
 * the retry delays), and `finish` sends the rest and commits the object once the recording
 * is signed. The local file stays the source of truth: the parts are read back from it,
 * and an upload in parts that cannot be finished (the bytes sent do not hash to the
 * signature, the store keeps failing) is aborted for the whole upload.
 */
export class RecordingStream {
  private uploadId: string | undefined;
  private readonly tags: string[] = [];
  private sent = 0;
  private readonly hash = createHash('sha256');
  private timer: NodeJS.Timeout | undefined;
  private pumping: Promise<void> | undefined;
  private failures = 0;
  private retryAt = 0;
  private finishFailures = 0;
  /** Set when the parts are given up: the whole upload takes over. */
  private abandoned = false;
  private completed = false;

  constructor(private readonly o: RecordingStreamOptions) {}

  /** Parts the store has confirmed. */
  get parts(): number {
    return this.tags.length;
  }

  /** Starts looking at the file every `pollMs`. */
  start(): void {
    this.timer = setInterval(() => this.tick(), this.o.pollMs);
    this.timer.unref();
  }

  /** Stops looking (the server stops): the parts file left beside the recording lets the next start abort the upload. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.pumping;
  }

  /**
   * The recording is whole and signed (`sha256`, `size`): sends the rest and commits the
   * object. False when the parts were not used or are given up (aborted): upload it whole.
   * Throws when the store failed; a later call goes on from the parts it has.
   */
  async finish(signed: { sha256: string; size: number }): Promise<boolean> {
    await this.stop();
    if (this.completed) return true;
    if (!this.abandoned && (this.uploadId !== undefined || this.o.replacing)) {
      try {
        if (await this.commit(signed)) return true;
        this.abandoned = true;
      } catch (error) {
        // A store that keeps failing the parts (or lost the upload) gets the whole file instead, once it answers.
        this.finishFailures += 1;
        if (this.finishFailures < this.o.retryDelaysMs.length) throw error;
        this.abandoned = true;
      }
    }
    if (this.uploadId !== undefined) await abortParts(this.o.target, this.o.name, this.uploadId, this.o.logger);
    this.uploadId = undefined;
    await rm(partsFileOf(this.o.file), { force: true });
    return false;
  }

  /** Sends the rest and commits the parts when they make the signed recording; false when they do not. */
  private async commit(signed: { sha256: string; size: number }): Promise<boolean> {
    await this.pump(true);
    // An empty recording has no part to commit.
    if (this.uploadId === undefined) return false;
    if (this.sent !== signed.size || this.hash.copy().digest('hex') !== signed.sha256) {
      this.o.logger.warn(
        { sessionId: this.o.sessionId, sentBytes: this.sent, size: signed.size },
        'the parts sent do not make the signed recording; it is uploaded whole',
      );
      return false;
    }
    await this.o.target.completeParts(this.o.name, this.uploadId, this.tags, this.o.contentType);
    this.completed = true;
    return true;
  }

  private tick(): void {
    if (this.pumping || Date.now() < this.retryAt) return;
    this.pumping = this.pump(false)
      .then(() => {
        this.failures = 0;
      })
      .catch((error: unknown) => {
        const delays = this.o.retryDelaysMs;
        const delay = delays[Math.min(this.failures, delays.length - 1)] ?? 60_000;
        this.failures += 1;
        this.retryAt = Date.now() + delay;
        this.o.logger.warn(
          { err: error, sessionId: this.o.sessionId, part: this.tags.length + 1, attempt: this.failures, retryInMs: delay },
          'could not upload a part of a recording while it is written; the local copy stays and the part is retried',
        );
      })
      .finally(() => (this.pumping = undefined));
  }

  /** Uploads every whole part past what the store has; with `last`, the rest as the last part too. */
  private async pump(last: boolean): Promise<void> {
    let handle: FileHandle;
    try {
      handle = await open(this.o.file, 'r');
    } catch (error) {
      // Not there yet (the writer opens it as the session starts).
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !last) return;
      throw error;
    }
    try {
      for (;;) {
        const rest = (await handle.stat()).size - this.sent;
        const length = rest >= this.o.partBytes ? this.o.partBytes : last ? rest : 0;
        if (length <= 0) return;
        const body = Buffer.alloc(length);
        for (let at = 0; at < length;) {
          const { bytesRead } = await handle.read(body, at, length - at, this.sent + at);
          if (bytesRead === 0) throw new GatehouseError('INTERNAL', `The recording ${this.o.file} ended before the part it was read for.`);
          at += bytesRead;
        }
        this.uploadId ??= await this.begin();
        this.tags.push(await this.o.target.putPart(this.o.name, this.uploadId, this.tags.length + 1, body));
        this.hash.update(body);
        this.sent += length;
      }
    } finally {
      await handle.close();
    }
  }

  private async begin(): Promise<string> {
    const uploadId = await this.o.target.startParts(this.o.name, this.o.contentType);
    await writeFileAtomically(partsFileOf(this.o.file), `${JSON.stringify({ name: this.o.name, uploadId })}\n`);
    return uploadId;
  }
}

/** Aborts an upload in parts; a store that refuses (a key without the right) is told in the log, and the upload goes on. */
export async function abortParts(target: StorageTarget, name: string, uploadId: string, logger: Logger): Promise<void> {
  try {
    await target.abortParts(name, uploadId);
  } catch (error) {
    if (!(error instanceof PartsAbortRefused)) throw error;
    logger.warn({ err: error, objectName: name }, 'could not abort an upload in parts of a recording; it is uploaded whole');
  }
}
