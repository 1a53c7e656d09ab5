import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { hashRecording, recordingSigner, type RecordingSignature } from '@gatehouse/core';
import type { GatewaySessions } from '@gatehouse/db';
import type { RecordingHash } from '@gatehouse/gateway';
import type { AuditCheckpointKey } from '../audit-checkpoint-key.js';
import type { Logger } from '../logger.js';

/** The signature file beside a recording. */
export const signatureFileOf = (recording: string) => `${recording}.sig`;

/** Writes `file` whole or not at all: each writer its own aside file (replicas may share the directory), then an atomic rename. */
export async function writeFileAtomically(file: string, text: string): Promise<void> {
  const aside = `${file}.${randomUUID()}.partial`;
  try {
    await writeFile(aside, text, { mode: 0o600 });
    await rename(aside, file);
  } catch (error) {
    // Only a failed write or rename leaves the aside file (an rm after every rename was 2.6 % of a session's CPU).
    await rm(aside, { force: true });
    throw error;
  }
}

export interface RecordingSignaturesOptions {
  sessions: GatewaySessions;
  recordingsDir: string;
  /** The server's signing key (the audit checkpoint key: outside the database, one for every replica). */
  key: Pick<AuditCheckpointKey, 'privateKeyPem' | 'publicKeyPem' | 'keyId'>;
  logger: Logger;
}

/**
 * Signs each finished recording: its SHA-256 and an Ed25519 signature by the server's
 * signing key go into the session's row and beside the file (`<recording>.sig`, the same
 * JSON document), so a copy can be checked offline (`gatehouse sessions verify`).
 */
export class RecordingSignatures {
  private readonly running = new Map<string, Promise<RecordingSignature | undefined>>();
  private readonly signedListeners: ((sessionId: string, file: string) => void)[] = [];
  private readonly signRecording: ReturnType<typeof recordingSigner>;

  constructor(private readonly o: RecordingSignaturesOptions) {
    this.signRecording = recordingSigner(o.key.privateKeyPem);
  }

  get publicKeyPem(): string {
    return this.o.key.publicKeyPem;
  }

  /** Called with each recording once it is signed (its file and `.sig` are whole on disk). */
  onSigned(listener: (sessionId: string, file: string) => void): void {
    this.signedListeners.push(listener);
  }

  /**
   * A session ended, or its recording arrived from a remote gateway: sign it (in the
   * background). `written`: the hash this process's recording writer computed as it wrote
   * the file, so the file is not read back (only when the file still has that length).
   */
  finished(sessionId: string, written?: RecordingHash): void {
    void this.sign(sessionId, written).catch((error: unknown) =>
      this.o.logger.error({ err: error, sessionId }, 'could not sign a recording; it is signed at the next start'),
    );
  }

  /**
   * Signs the recording of an ended session whose file is here, once: a second call while
   * the first runs shares it, and a row signed already (by another replica) keeps its
   * signature, which is then written beside the file. Undefined when there is no
   * recording here (yet: a remote gateway's is signed when it has been fetched).
   */
  sign(sessionId: string, written?: RecordingHash): Promise<RecordingSignature | undefined> {
    const running = this.running.get(sessionId);
    if (running) return running;
    const next = this.signNow(sessionId, written).finally(() => this.running.delete(sessionId));
    this.running.set(sessionId, next);
    return next;
  }

  /** Resolves once the signatures under way are written (before the database closes). */
  async stop(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }

  /** Signs every ended session's recording that has no signature yet (left by a stop mid-way). */
  async signPending(): Promise<number> {
    let signed = 0;
    for (const { id } of await this.o.sessions.unsignedRecordings()) if (await this.sign(id)) signed += 1;
    return signed;
  }

  private async signNow(sessionId: string, written: RecordingHash | undefined): Promise<RecordingSignature | undefined> {
    const session = await this.o.sessions.recordingToSign(sessionId);
    if (!session?.ended || session.recording === null) return undefined;
    const file = path.resolve(this.o.recordingsDir, session.recording);
    if (!file.startsWith(`${this.o.recordingsDir}${path.sep}`)) return undefined;
    const hash = await recordingHashOf(file, written).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!hash) return undefined;
    const kept = session.signature ?? (await this.o.sessions.recordSignature(sessionId, this.signRecording({ sessionId, ...hash })));
    if (!kept) return undefined;
    await writeFileAtomically(signatureFileOf(file), `${JSON.stringify(kept, null, 2)}\n`);
    for (const listener of this.signedListeners) listener(sessionId, file);
    return kept;
  }
}

/**
 * The recording's hash: the writer's, when the file is as long as the writer left it (a
 * recording cut back after a crash is not), otherwise read from the file.
 */
async function recordingHashOf(file: string, written: RecordingHash | undefined): Promise<RecordingHash> {
  if (written && (await stat(file)).size === written.size) return written;
  return hashRecording(createReadStream(file));
}
