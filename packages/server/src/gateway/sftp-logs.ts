import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { hashRecording, recordingSigner } from '@gatehouse/core';
import type { GatewaySessions } from '@gatehouse/db';
import type { AuditCheckpointKey } from '../audit-checkpoint-key.js';
import type { Logger } from '../logger.js';
import { signatureFileOf, writeFileAtomically } from './recording-signatures.js';

/** Where an SFTP session's operation log is written, under the recordings directory: `<day>/<id>.sftp.jsonl`. */
export const sftpLogOf = (startedAt: string, sessionId: string) =>
  path.join(new Date(startedAt).toISOString().slice(0, 10), `${sessionId}.sftp.jsonl`);

export interface SftpLogsOptions {
  sessions: GatewaySessions;
  recordingsDir: string;
  /** The server's signing key, as for recordings. */
  key: Pick<AuditCheckpointKey, 'privateKeyPem'>;
  /** Given each log once it and its `.sig` are whole on disk (to upload them). */
  written: (sessionId: string, file: string) => void;
  logger: Logger;
}

/**
 * SFTP sessions' operation logs for the recordings' object store. The database keeps the
 * operations; once a session ends its log is written as JSON lines (a header naming the
 * session, then one operation a line, in order), signed as a recording is (the row keeps
 * the signature, `<log>.sig` beside it), and handed to the uploads. The same rows give the
 * same bytes, so a log not uploaded before a stop is written again at the next start.
 */
export class SftpLogs {
  private readonly running = new Map<string, Promise<void>>();
  private readonly signRecording: ReturnType<typeof recordingSigner>;

  constructor(private readonly o: SftpLogsOptions) {
    this.signRecording = recordingSigner(o.key.privateKeyPem);
  }

  /** An SFTP session ended (here or at a remote gateway): write, sign and hand on its log (in the background). */
  finished(sessionId: string): void {
    void this.write(sessionId);
  }

  /** Writes the logs of ended SFTP sessions not in the store yet (left by a stop, or older than the store), one at a time. */
  async writePending(): Promise<void> {
    for (const id of await this.o.sessions.unstoredSftpLogs()) await this.write(id);
  }

  /** Resolves once the logs under way are written (before the database closes). */
  async stop(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }

  private write(sessionId: string): Promise<void> {
    const running = this.running.get(sessionId);
    if (running) return running;
    const next = this.writeNow(sessionId)
      .catch((error: unknown) =>
        this.o.logger.error(
          { err: error, sessionId },
          'could not write an SFTP session log for the recording store; it is written at the next start',
        ),
      )
      .finally(() => this.running.delete(sessionId));
    this.running.set(sessionId, next);
    return next;
  }

  private async writeNow(sessionId: string): Promise<void> {
    const session = await this.o.sessions.find(sessionId);
    if (session?.kind !== 'sftp' || session.result === 'active' || session.recordingStore) return;
    const header = {
      sessionId,
      kind: 'sftp',
      user: session.username,
      device: session.deviceName,
      account: session.accountUsername,
      startedAt: session.startedAt,
      endedAt: session.endedAt,
      result: session.result,
    };
    const operations = (await this.o.sessions.fileOperations(sessionId)).map(({ id: _id, seq: _seq, ...op }) => op);
    const text = [header, ...operations].map((line) => `${JSON.stringify(line)}\n`).join('');
    const hash = await hashRecording([Buffer.from(text)]);
    const kept =
      session.recordingSignature ?? (await this.o.sessions.recordSignature(sessionId, this.signRecording({ sessionId, ...hash })));
    if (!kept) return;
    if (kept.sha256 !== hash.sha256) {
      // Its operations changed after it was signed: the rows stay, the signed log cannot be made again.
      this.o.logger.error({ sessionId }, 'the SFTP session log no longer matches its signature; it stays in the database only');
      return;
    }
    const file = path.resolve(this.o.recordingsDir, sftpLogOf(session.startedAt, sessionId));
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFileAtomically(file, text);
    await writeFileAtomically(signatureFileOf(file), `${JSON.stringify(kept, null, 2)}\n`);
    this.o.written(sessionId, file);
  }
}
