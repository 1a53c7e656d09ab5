import { existsSync } from 'node:fs';
import path from 'node:path';
import type { GatewaySession, GatewaySessions } from '@gatehouse/db';
import { repairRecording, repairRfbRecording } from '@gatehouse/gateway';
import type { Logger } from '../logger.js';
import type { Services } from '../services.js';
import { abandonedEnd, BUILT_IN_GATEWAY, sessionEndEvent } from './broker.js';

/** Why a server starting ends the sessions its killed predecessor (or a server gone from this machine) left open. */
export const STOPPED_SERVER_REASON = 'The gateway stopped before the session ended (the server was killed or the machine went down).';

/** Why the leader ends the sessions of a replica whose lease lapsed. */
export const LAPSED_REPLICA_REASON =
  'The server replica holding the session stopped answering (its lease lapsed: it was killed, lost the database, or its machine went down).';

export interface AbandonedSessionsOptions {
  services: Pick<Services, 'withAudit' | 'afterSessionRotation' | 'recordingSignatures' | 'sftpLogs' | 'replica'>;
  sessions: GatewaySessions;
  /** This server's recordings directory: a recording found there is cut back and signed. */
  recordingsDir: string;
  logger: Logger;
}

/**
 * Ends the built-in gateway's sessions that no running replica holds (see
 * `GatewaySessions.endAbandoned`), never this replica's own: each as failed with `reason`
 * and a `session.end` audit event in the same transaction. A recording on this server's
 * disk, which may stop in the middle of a line (asciicast) or a frame (a desktop's `.rfb`),
 * is cut back to its last whole one so players read it, then signed.
 */
export async function endAbandonedSessions(
  o: AbandonedSessionsOptions,
  reason: string,
  deadReplicas: string[] = [],
): Promise<GatewaySession[]> {
  const abandoned = await o.services.withAudit(null, async (tx, audit) => {
    const ended = await tx.gatewaySessions.endAbandoned(BUILT_IN_GATEWAY, reason, { deadReplicas, ownReplica: o.services.replica });
    for (const s of ended) audit(sessionEndEvent(s, s.id, abandonedEnd(s, reason), BUILT_IN_GATEWAY));
    return ended;
  });
  for (const s of abandoned) {
    if (s.recorded) await repairHere(o, s.id);
    o.services.afterSessionRotation?.sessionEnded(s);
    // Cut back first, then signed: the signature covers the recording players read.
    if (s.recorded) o.services.recordingSignatures?.finished(s.id);
    if (s.kind === 'sftp') o.services.sftpLogs?.finished(s.id);
  }
  return abandoned;
}

/** Cuts an abandoned session's recording back to its last whole line or frame, when it is on this server's disk. */
async function repairHere(o: AbandonedSessionsOptions, sessionId: string): Promise<void> {
  const relative = await o.sessions.recordingOf(sessionId);
  const file = relative === undefined ? undefined : path.resolve(o.recordingsDir, relative);
  // Another machine's replica wrote it to its own disk: it is repaired and signed when that machine starts again.
  if (!file?.startsWith(`${o.recordingsDir}${path.sep}`) || !existsSync(file)) return;
  const repair = file.endsWith('.rfb') ? repairRfbRecording : repairRecording;
  const dropped = await repair(file).catch((error: unknown) => {
    o.logger.error({ err: error, sessionId }, 'could not repair the recording of an abandoned session');
    return 0;
  });
  if (dropped > 0)
    o.logger.warn({ sessionId, droppedBytes: dropped }, 'cut an unfinished line or frame off the recording of an abandoned session');
}

export interface AbandonedSessionSweepOptions extends AbandonedSessionsOptions {
  /** Whether this replica is the leader now: only the leader sweeps. */
  isLeader: () => boolean;
  /** How often the leader sweeps (the leader lease's renewal period). */
  everyMs: number;
}

/**
 * Replicas on PostgreSQL: every `everyMs` the leader ends the built-in-gateway sessions of
 * replicas whose `replica:<holder>` lease lapsed (killed on another machine, cut off from
 * the database), so they do not stay live until some replica starts again. Safe with
 * several sweepers at once: each session is ended, and audited, by one.
 */
export class AbandonedSessionSweep {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(private readonly o: AbandonedSessionSweepOptions) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), this.o.everyMs);
    this.timer.unref();
  }

  /** Stops sweeping; waits for a sweep under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private tick(): void {
    if (this.running || !this.o.isLeader()) return;
    this.running = this.sweep()
      .catch((error: unknown) => this.o.logger.warn({ err: error }, 'could not end the sessions of replicas that stopped answering'))
      .finally(() => (this.running = undefined));
  }

  /** One sweep, whether or not this replica leads. Exposed for tests. */
  async sweep(): Promise<GatewaySession[]> {
    const ended = await endAbandonedSessions(this.o, LAPSED_REPLICA_REASON);
    if (ended.length > 0)
      this.o.logger.warn(
        { sessionIds: ended.map((s) => s.id) },
        `ended ${ended.length} session(s) of server replicas that stopped answering`,
      );
    return ended;
  }
}
