import { open, readFile } from 'node:fs/promises';
import {
  checkAuditCheckpoint,
  InternalError,
  readAuditCheckpoint,
  signAuditCheckpoint,
  type AuditCheckpoint,
  type TrustedAuditCheckpoint,
} from '@gatehouse/core';
import { readAuditHead, verifyAuditChain, type Db } from '@gatehouse/db';
import type { AuditCheckpointKey } from './audit-checkpoint-key.js';
import type { Logger } from './logger.js';
import type { Services } from './services.js';

export interface AuditCheckpointsOptions {
  db: Db;
  key: AuditCheckpointKey;
  logger: Logger;
  audit: Services['audit'];
  /** `auditCheckpointFile`: every checkpoint signed is appended here, one JSON line each. */
  file?: string | undefined;
  /** How often the head is signed (when it moved) while the server runs. */
  intervalMs: number;
  /** Whether this replica signs every interval (the leader; every replica signs at start and stop); always, when not given. */
  isLeader?: () => boolean;
}

/**
 * Signs the audit chain's head with a key the database does not hold, so the chain can be
 * checked against copies kept where a DBA cannot rewrite them: every break-glass manifest,
 * the optional append-only file (every interval when the head moved, and at shutdown), and
 * whoever fetches one from the API. A checkpoint is signed only for a chain that verifies
 * and still holds the previous checkpoint: a head rewound or re-hashed behind the server's
 * back is reported, never signed over.
 */
export class AuditCheckpoints {
  /** The newest checkpoint this process signed, or read from its file at start. */
  private latest: TrustedAuditCheckpoint | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private reported: string | undefined;

  constructor(private readonly o: AuditCheckpointsOptions) {}

  get publicKeyPem(): string {
    return this.o.key.publicKeyPem;
  }

  get keyId(): string {
    return this.o.key.keyId;
  }

  /** The newest checkpoint this server holds, for `GET /audit/verify`. */
  newest(): TrustedAuditCheckpoint | undefined {
    return this.latest;
  }

  /** Checks a checkpoint someone kept against this server's key. */
  check(value: unknown): ReturnType<typeof checkAuditCheckpoint> {
    return checkAuditCheckpoint(value, this.o.key.publicKeyPem);
  }

  /**
   * Signs the current head (after checking the chain up to it) and appends it to the
   * file; the previous checkpoint when the head has not moved or the chain does not hold
   * it any more; undefined when no checkpoint could be signed yet.
   */
  sign(): Promise<AuditCheckpoint | undefined> {
    const next = this.queue.then(() => this.signNow());
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async signNow(): Promise<AuditCheckpoint | undefined> {
    const previous = this.latest;
    const head = await readAuditHead(this.o.db);
    if (previous && previous.seq === head.seq && previous.hash === head.hash) return previous;
    // After the first, only what was appended since the previous checkpoint is walked.
    const result = await verifyAuditChain(this.o.db, previous ? { checkpoint: previous, fromCheckpoint: true } : {});
    if (!result.ok) {
      await this.reportBroken(result.seq, result.problem);
      return previous;
    }
    const signed = signAuditCheckpoint({ seq: result.events, hash: result.headHash }, this.o.key.privateKeyPem);
    const check = this.check(signed);
    if (!check.ok) throw new InternalError(`A checkpoint just signed does not verify: ${check.reason}`);
    this.latest = check.checkpoint;
    // A file that cannot be written is loud, but does not cost the manifest its checkpoint.
    if (this.o.file) {
      await this.append(signed).catch((error: unknown) =>
        this.o.logger.error({ err: error, file: this.o.file }, 'the audit checkpoint could not be appended to its file'),
      );
    }
    return signed;
  }

  private async append(checkpoint: AuditCheckpoint): Promise<void> {
    // O_APPEND: each line lands at the end whatever else writes to the file.
    const handle = await open(this.o.file ?? '', 'a', 0o600);
    try {
      await handle.write(`${JSON.stringify(checkpoint)}\n`);
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  private async reportBroken(seq: number, problem: string): Promise<void> {
    if (this.reported === problem) return;
    this.reported = problem;
    this.o.logger.error(
      { seq, problem },
      `The audit chain does not verify (event ${seq}: ${problem}); no audit checkpoint is signed until it is explained. Run ./gatehouse audit verify.`,
    );
    await this.o.audit(null, { action: 'audit.checkpoint_refused', actorName: 'system', outcome: 'failure', details: { seq, problem } });
  }

  /** Takes the newest checkpoint of the file (when it was signed with this key), signs the head, then every interval. */
  async start(): Promise<void> {
    if (this.o.file) {
      const text = await readFile(this.o.file, 'utf8').catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      });
      const found = text === undefined ? undefined : readAuditCheckpoint(text);
      const check = found?.ok ? this.check(found.checkpoint) : found;
      if (check?.ok) this.latest = check.checkpoint;
      else if (check) this.o.logger.warn({ file: this.o.file, problem: check.reason }, 'the last audit checkpoint in the file is not used');
    }
    // Not awaited: the first checkpoint walks the whole chain, which may take a while.
    void this.tick();
    this.timer = setInterval(() => {
      if (this.o.isLeader?.() ?? true) void this.tick();
    }, this.o.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    await this.sign().catch((error: unknown) => this.o.logger.error({ err: error }, 'the audit checkpoint could not be written'));
  }

  /** Stops the timer and writes the last checkpoint (the database must still be open). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.o.file) await this.tick();
  }
}
