import { randomUUID } from 'node:crypto';
import { inTransaction, type Db, type Tx } from './connect.js';
import { sql, type ExpressionBuilder } from 'kysely';
import { escapeLike } from './devices.js';
import type { RecordingSignature } from '@gatehouse/core';
import type { Database, DeviceHostKeyTable, GatewaySessionTable } from './schema.js';

/** Which sessions to list: all of them by default, newest first. */
export interface SessionQuery {
  limit?: number;
  offset?: number;
  deviceId?: string;
  userId?: string;
  /** Part of the user name. */
  user?: string;
  /** Part of the device name. */
  device?: string;
  /** Started at or after (ISO 8601). */
  from?: string;
  /** Started before (ISO 8601). */
  to?: string;
  result?: GatewaySession['result'];
  /** Only sessions with at least one finished upload or download (SFTP or scp). */
  transfers?: boolean;
}

/** Which live sessions `GatewaySessions.endAbandoned` may end. */
export interface AbandonedQuery {
  /** Only sessions started before (ISO 8601): a gateway's entry that restarted then. */
  startedBefore?: string;
  /** Replicas known to be gone although their lease has not lapsed yet. */
  deadReplicas?: string[];
  /** The caller's own replica, which runs: its sessions are never abandoned. */
  ownReplica?: string;
}

/** A session through a gateway: one proxied channel, a connection without one, or a failed connection. */
export interface GatewaySession {
  id: string;
  userId: string | null;
  username: string;
  projectId: string | null;
  projectName: string;
  deviceId: string | null;
  deviceName: string;
  accountId: string | null;
  accountUsername: string;
  /** The gateway that reached the device. */
  gateway: string;
  /** The device's gateway segment at the time, or null. */
  segment: string | null;
  /** The gateway the user connected to (it signed them in and recorded the session). */
  entryGateway: string;
  /** `connection`: a connection that carried no channel for a moment (`ssh -N`); null for a failed connection. */
  kind: 'shell' | 'exec' | 'sftp' | 'forward' | 'connection' | 'vnc' | 'rdp' | null;
  command: string | null;
  remoteAddress: string | null;
  startedAt: string;
  endedAt: string | null;
  bytesIn: number;
  bytesOut: number;
  result: 'active' | 'success' | 'failure';
  exitStatus: number | null;
  reason: string | null;
  /** Whether a recording exists (GET /sessions/:id/recording). */
  recorded: boolean;
  /** The recording's format, by its file's extension: a terminal's asciicast, or a desktop's RFB stream. */
  recordingFormat: RecordingFormat | null;
  /** The maintenance window the session entered under. */
  windowId: string | null;
  /** The runbook run whose command the session ran. */
  runbookRunId: string | null;
  /** The SSH key exchange of the user's connection to the gateway (`mlkem768x25519-sha256`, …); null when not SSH. */
  userKex: string | null;
  /** The SSH key exchange of the gateway's connection to the device; null when not SSH. */
  deviceKex: string | null;
  /** The finished recording's SHA-256 (hex) and the server's signature over it; null until signed. */
  recordingSha256: string | null;
  recordingSignature: RecordingSignature | null;
  /** The recording's object name in the recordings' object store; null while it lives only on the server's disk. */
  recordingStore: string | null;
  /** Files uploaded and downloaded in the session (successful SFTP or scp transfers). */
  uploads: number;
  downloads: number;
}

export type RecordingFormat = 'asciicast' | 'rfb';

/** A recording's format by its path: `.rfb` a desktop's RFB stream, anything else (`.cast`) asciicast. */
export const recordingFormatOf = (path: string): RecordingFormat => (path.endsWith('.rfb') ? 'rfb' : 'asciicast');

/** One finished SFTP (or legacy scp) operation of a session. */
export interface FileOperation {
  id: string;
  seq: number;
  at: string;
  op: string;
  path: string;
  target: string | null;
  bytes: number;
  result: 'success' | 'failure';
  error: string | null;
}

export type GatewaySessionInput = Omit<
  GatewaySessionTable,
  | 'bytes_in'
  | 'bytes_out'
  | 'ended_at'
  | 'exit_status'
  | 'window_id'
  | 'runbook_run_id'
  | 'user_kex'
  | 'device_kex'
  | 'recording_sha256'
  | 'recording_signature'
  | 'replica'
  | 'end_requested'
  | 'recording_store'
  | 'warn_requested'
  | 'warn_requested_at'
> & {
  /** The replica whose built-in gateway holds the session. */
  replica?: string | null;
  /** The SSH key exchange of each leg, when the session is SSH. */
  user_kex?: string | null;
  device_kex?: string | null;
  /** The maintenance window the session entered under, if its device needs one. */
  window_id?: string | null;
  /** The runbook run whose command the session runs. */
  runbook_run_id?: string | null;
};

/** What a device's key is checked for: each protocol has its own (an SSH host key, an RDP or VNC TLS certificate). */
export type HostKeyProtocol = 'ssh' | 'rdp' | 'vnc';

export interface HostKey {
  deviceId: string;
  protocol: HostKeyProtocol;
  /** The key's type (`ssh-ed25519`, `rdp-x509`, `x509`); null for a pinned key the device has not presented yet. */
  algorithm: string | null;
  /** `SHA256:<base64>`: of the SSH public key blob, or of the DER certificate. */
  fingerprint: string;
  /** When it was first seen, or pinned. */
  firstSeen: string;
  /** Set by an administrator rather than trusted on first use. */
  pinned: boolean;
  /**
   * The key an administrator pinned ahead of a planned change: accepted as well until the
   * device presents it, which then replaces this one. Null when none is expected.
   */
  next: { fingerprint: string; pinnedAt: string } | null;
}

const hostKeyFromRow = (r: DeviceHostKeyTable): HostKey => ({
  deviceId: r.device_id,
  protocol: r.protocol as HostKeyProtocol,
  algorithm: r.algorithm,
  fingerprint: r.fingerprint,
  firstSeen: r.first_seen,
  pinned: r.pinned === 1,
  next: r.next_fingerprint === null ? null : { fingerprint: r.next_fingerprint, pinnedAt: r.next_pinned_at ?? r.first_seen },
});

/** A session row, with its transfer counts when the query selected them (`withTransfers`). */
type SessionRow = GatewaySessionTable & { uploads?: number | string | null; downloads?: number | string | null };

const transferCount = (eb: ExpressionBuilder<Database, 'gateway_sessions'>, op: 'upload' | 'download') =>
  eb
    .selectFrom('session_file_operations as f')
    .select((f) => f.fn.countAll<number | string>().as('n'))
    .whereRef('f.session_id', '=', 'gateway_sessions.id')
    .where('f.op', '=', op)
    .where('f.result', '=', 'success');

/** Every column and the session's upload and download counts. */
const withTransfers = (eb: ExpressionBuilder<Database, 'gateway_sessions'>) => [
  transferCount(eb, 'upload').as('uploads'),
  transferCount(eb, 'download').as('downloads'),
];

const sessionFromRow = (r: SessionRow): GatewaySession => ({
  id: r.id,
  userId: r.user_id,
  username: r.username,
  projectId: r.project_id,
  projectName: r.project_name,
  deviceId: r.device_id,
  deviceName: r.device_name,
  accountId: r.account_id,
  accountUsername: r.account_username,
  gateway: r.gateway,
  segment: r.segment,
  entryGateway: r.entry_gateway ?? r.gateway,
  kind: r.kind as GatewaySession['kind'],
  command: r.command,
  remoteAddress: r.remote_address,
  startedAt: r.started_at,
  endedAt: r.ended_at,
  bytesIn: Number(r.bytes_in),
  bytesOut: Number(r.bytes_out),
  result: r.result as GatewaySession['result'],
  exitStatus: r.exit_status,
  reason: r.reason,
  recorded: r.recording !== null,
  recordingFormat: r.recording === null ? null : recordingFormatOf(r.recording),
  uploads: Number(r.uploads ?? 0),
  downloads: Number(r.downloads ?? 0),
  windowId: r.window_id,
  runbookRunId: r.runbook_run_id,
  userKex: r.user_kex,
  deviceKex: r.device_kex,
  recordingSha256: r.recording_sha256,
  recordingStore: r.recording_store,
  recordingSignature: r.recording_signature === null ? null : (JSON.parse(r.recording_signature) as RecordingSignature),
});

/** Sessions through gateways (one row per proxied channel, per connection while it carries no channel, and per failed connection) and the devices' trusted host keys. */
export class GatewaySessions {
  constructor(
    readonly db: Db,
    private readonly x: Tx = db.kysely,
  ) {}

  async start(input: GatewaySessionInput): Promise<void> {
    await this.x
      .insertInto('gateway_sessions')
      .values({ ...input, ended_at: null, bytes_in: 0, bytes_out: 0, exit_status: null })
      .execute();
  }

  /** A failed connection: a row that started and ended at once, with the reason. */
  async fail(input: Omit<GatewaySessionInput, 'result' | 'recording'>): Promise<void> {
    await this.x
      .insertInto('gateway_sessions')
      .values({ ...input, result: 'failure', recording: null, ended_at: input.started_at, bytes_in: 0, bytes_out: 0, exit_status: null })
      .execute();
  }

  async end(
    id: string,
    end: {
      endedAt: string;
      bytesIn: number;
      bytesOut: number;
      result: 'success' | 'failure';
      exitStatus: number | null;
      reason: string | null;
    },
  ): Promise<GatewaySession | undefined> {
    // The ended row comes back from the update itself (RETURNING, on both databases): one
    // statement instead of an update and a read (issue 23). A session ended already (by
    // another replica, or at a start that found it abandoned) is read as it stands.
    const ended = await this.x
      .updateTable('gateway_sessions')
      .set({
        ended_at: end.endedAt,
        bytes_in: end.bytesIn,
        bytes_out: end.bytesOut,
        result: end.result,
        exit_status: end.exitStatus,
        reason: end.reason,
      })
      .where('id', '=', id)
      .where('result', '=', 'active')
      .returningAll()
      .returning(withTransfers)
      .executeTakeFirst();
    return ended ? sessionFromRow(ended) : this.find(id);
  }

  /** A live session's byte counts so far (the list shows them while it runs); an ended session keeps its final ones. */
  async progress(id: string, bytes: { bytesIn: number; bytesOut: number }): Promise<void> {
    await this.x
      .updateTable('gateway_sessions')
      .set({ bytes_in: bytes.bytesIn, bytes_out: bytes.bytesOut })
      .where('id', '=', id)
      .where('result', '=', 'active')
      .execute();
  }

  /** The replicas holding live sessions entered through `gateway` (null: sessions from before replicas were named). */
  async liveReplicas(gateway: string): Promise<string[]> {
    const rows = await this.x
      .selectFrom('gateway_sessions')
      .select('replica')
      .distinct()
      .where((eb) => eb.or([eb('entry_gateway', '=', gateway), eb.and([eb('entry_gateway', 'is', null), eb('gateway', '=', gateway)])]))
      .where('result', '=', 'active')
      .where('replica', 'is not', null)
      .execute();
    return rows.map((r) => r.replica as string);
  }

  /**
   * Ends the live sessions entered through `gateway` whose replica no longer runs, as failed
   * with `reason`: its lease lapsed, or it is one of `deadReplicas` (known dead without
   * waiting for the lease, e.g. a process on this machine that is gone); never those of
   * `ownReplica` (the caller, which runs). One conditional UPDATE answers the rows it
   * changed: of several callers at once (replicas, a sweep and a start), each session is
   * ended, and answered, by exactly one.
   */
  async endAbandoned(gateway: string, reason: string, which: AbandonedQuery = {}): Promise<GatewaySession[]> {
    const { startedBefore, deadReplicas = [], ownReplica } = which;
    const now = new Date().toISOString();
    const ended = await this.x
      .updateTable('gateway_sessions')
      .set({ ended_at: now, result: 'failure', reason })
      .where((eb) =>
        eb.and([
          eb.or([eb('entry_gateway', '=', gateway), eb.and([eb('entry_gateway', 'is', null), eb('gateway', '=', gateway)])]),
          ...(startedBefore === undefined ? [] : [eb('started_at', '<', startedBefore)]),
          // Another replica's sessions are its own while its lease is renewed (it still runs).
          eb.or([
            eb('replica', 'is', null),
            ...(deadReplicas.length === 0 ? [] : [eb('replica', 'in', deadReplicas)]),
            eb.not(
              eb.exists(
                eb
                  .selectFrom('leases')
                  .select('leases.name')
                  .where('leases.name', '=', sql<string>`${'replica:'} || gateway_sessions.replica`)
                  .where('leases.expires_at', '>', now),
              ),
            ),
          ]),
          ...(ownReplica === undefined ? [] : [eb.or([eb('replica', 'is', null), eb('replica', '!=', ownReplica)])]),
        ]),
      )
      .where('result', '=', 'active')
      .returningAll()
      .execute();
    return ended.map(sessionFromRow);
  }

  /**
   * Asks whichever replica's built-in gateway holds a live session to end it (each polls
   * `endRequests`); false when the session is not live any more.
   */
  async requestEnd(id: string, reason: string): Promise<boolean> {
    const r = await this.x
      .updateTable('gateway_sessions')
      .set({ end_requested: reason })
      .where('id', '=', id)
      .where('result', '=', 'active')
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Live sessions another replica asked to end, with the reason. */
  async endRequests(): Promise<{ id: string; reason: string }[]> {
    const rows = await this.x
      .selectFrom('gateway_sessions')
      .select(['id', 'end_requested'])
      .where('end_requested', 'is not', null)
      .where('result', '=', 'active')
      .execute();
    return rows.map((r) => ({ id: r.id, reason: r.end_requested ?? '' }));
  }

  /**
   * Asks whichever replica's built-in gateway holds a live session to show its user `text`
   * (each reads `warnRequests`); a newer warning replaces one not shown yet. False when the
   * session is not live any more.
   */
  async requestWarning(id: string, text: string): Promise<boolean> {
    const r = await this.x
      .updateTable('gateway_sessions')
      .set({ warn_requested: text, warn_requested_at: new Date().toISOString() })
      .where('id', '=', id)
      .where('result', '=', 'active')
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /**
   * Claims the warnings asked for the live sessions `replica` holds: each is cleared from
   * its row and answered once, so the replica shows it once.
   */
  async claimWarnings(replica: string): Promise<{ id: string; text: string }[]> {
    const asked = await this.x
      .selectFrom('gateway_sessions')
      .select(['id', 'warn_requested', 'warn_requested_at'])
      .where('warn_requested_at', 'is not', null)
      .where('replica', '=', replica)
      .where('result', '=', 'active')
      .execute();
    const claimed: { id: string; text: string }[] = [];
    for (const r of asked) {
      // Conditional on the time read: a warning asked for meanwhile stays for the next pass.
      const cleared = await this.x
        .updateTable('gateway_sessions')
        .set({ warn_requested: null, warn_requested_at: null })
        .where('id', '=', r.id)
        .where('warn_requested_at', '=', r.warn_requested_at)
        .executeTakeFirst();
      if (Number(cleared.numUpdatedRows) === 1 && r.warn_requested !== null) claimed.push({ id: r.id, text: r.warn_requested });
    }
    return claimed;
  }

  /** Whether a session is still live (its row says `active`). */
  async isLive(id: string): Promise<boolean> {
    const row = await this.x.selectFrom('gateway_sessions').select('result').where('id', '=', id).executeTakeFirst();
    return row?.result === 'active';
  }

  async find(id: string): Promise<GatewaySession | undefined> {
    const row = await this.x.selectFrom('gateway_sessions').selectAll().select(withTransfers).where('id', '=', id).executeTakeFirst();
    return row && sessionFromRow(row);
  }

  /**
   * What signing a session's recording needs, in one light read: whether the session has
   * ended, its recording's path (relative to the recordings directory) and the signature
   * the row holds. Undefined when there is no such session.
   */
  async recordingToSign(
    id: string,
  ): Promise<{ ended: boolean; recording: string | null; signature: RecordingSignature | null } | undefined> {
    const row = await this.x
      .selectFrom('gateway_sessions')
      .select(['result', 'recording', 'recording_signature'])
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    const signature = row.recording_signature === null ? null : (JSON.parse(row.recording_signature) as RecordingSignature);
    return { ended: row.result !== 'active', recording: row.recording, signature };
  }

  /** The recording's path relative to the recordings directory, or undefined. */
  async recordingOf(id: string): Promise<string | undefined> {
    const row = await this.x.selectFrom('gateway_sessions').select('recording').where('id', '=', id).executeTakeFirst();
    return row?.recording ?? undefined;
  }

  /**
   * Keeps a finished recording's signature, unless one is kept already (two signers at
   * once: the first stays). Answers the signature the row holds.
   */
  async recordSignature(id: string, signature: RecordingSignature): Promise<RecordingSignature | undefined> {
    const { numUpdatedRows } = await this.x
      .updateTable('gateway_sessions')
      .set({ recording_sha256: signature.sha256, recording_signature: JSON.stringify(signature) })
      .where('id', '=', id)
      .where('recording_signature', 'is', null)
      .executeTakeFirst();
    if (Number(numUpdatedRows) > 0) return signature;
    const row = await this.x.selectFrom('gateway_sessions').select('recording_signature').where('id', '=', id).executeTakeFirst();
    return row?.recording_signature ? (JSON.parse(row.recording_signature) as RecordingSignature) : undefined;
  }

  /** The recording is in the object store as `objectName` (confirmed by the store). */
  async markStored(id: string, objectName: string): Promise<void> {
    await this.x.updateTable('gateway_sessions').set({ recording_store: objectName }).where('id', '=', id).execute();
  }

  /** Signed recordings not in the object store yet, oldest first (at most `limit`). */
  async unstoredRecordings(limit = 1000): Promise<{ id: string; recording: string }[]> {
    const rows = await this.x
      .selectFrom('gateway_sessions')
      .select(['id', 'recording'])
      .where('recording_signature', 'is not', null)
      .where('recording_store', 'is', null)
      .orderBy('started_at')
      .limit(limit)
      .execute();
    return rows.flatMap((r) => (r.recording === null ? [] : [{ id: r.id, recording: r.recording }]));
  }

  /** Ended SFTP sessions whose operation log is not in the object store yet, oldest first (at most `limit`). */
  async unstoredSftpLogs(limit = 1000): Promise<string[]> {
    const rows = await this.x
      .selectFrom('gateway_sessions')
      .select('id')
      .where('kind', '=', 'sftp')
      .where('result', '!=', 'active')
      .where('recording_store', 'is', null)
      .orderBy('started_at')
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  /** Ended sessions with a recording and no signature yet, oldest first (at most `limit`). */
  async unsignedRecordings(limit = 1000): Promise<{ id: string; recording: string }[]> {
    const rows = await this.x
      .selectFrom('gateway_sessions')
      .select(['id', 'recording'])
      .where('recording', 'is not', null)
      .where('recording_signature', 'is', null)
      .where('result', '!=', 'active')
      .orderBy('started_at')
      .limit(limit)
      .execute();
    return rows.flatMap((r) => (r.recording === null ? [] : [{ id: r.id, recording: r.recording }]));
  }

  /** Appends a finished file operation to the session's log. */
  async addFileOperation(sessionId: string, op: Omit<FileOperation, 'id' | 'seq'>): Promise<FileOperation> {
    return inTransaction(this.x, async (trx) => {
      const last = await trx
        .selectFrom('session_file_operations')
        .select((eb) => eb.fn.max<number | null>('seq').as('seq'))
        .where('session_id', '=', sessionId)
        .executeTakeFirst();
      const row = {
        id: randomUUID(),
        session_id: sessionId,
        seq: Number(last?.seq ?? 0) + 1,
        at: op.at,
        op: op.op,
        path: op.path,
        target: op.target,
        bytes: op.bytes,
        result: op.result,
        error: op.error,
      };
      await trx.insertInto('session_file_operations').values(row).execute();
      return { ...op, id: row.id, seq: row.seq };
    });
  }

  /** The session's file operations, in order. */
  async fileOperations(sessionId: string): Promise<FileOperation[]> {
    const rows = await this.x
      .selectFrom('session_file_operations')
      .selectAll()
      .where('session_id', '=', sessionId)
      .orderBy('seq')
      .execute();
    return rows.map((r) => ({
      id: r.id,
      seq: r.seq,
      at: r.at,
      op: r.op,
      path: r.path,
      target: r.target,
      bytes: Number(r.bytes),
      result: r.result as FileOperation['result'],
      error: r.error,
    }));
  }

  /** Live sessions per gateway that reached the device. */
  async liveByGateway(): Promise<Map<string, number>> {
    const rows = await this.x
      .selectFrom('gateway_sessions')
      .select(['gateway', (eb) => eb.fn.countAll<string | number>().as('n')])
      .where('result', '=', 'active')
      .groupBy('gateway')
      .execute();
    return new Map(rows.map((r) => [r.gateway, Number(r.n)]));
  }

  /** How many sessions of people (not of a runbook run) are live on the account now. */
  async liveOnAccount(accountId: string): Promise<number> {
    const row = await this.x
      .selectFrom('gateway_sessions')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('result', '=', 'active')
      .where('account_id', '=', accountId)
      .where('runbook_run_id', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** The live sessions that entered under a maintenance window. */
  async liveInWindow(windowId: string): Promise<GatewaySession[]> {
    const rows = await this.x
      .selectFrom('gateway_sessions')
      .selectAll()
      .where('result', '=', 'active')
      .where('window_id', '=', windowId)
      .orderBy('started_at')
      .execute();
    return rows.map(sessionFromRow);
  }

  /** Live sessions that entered under a maintenance window which is no longer open (ended, revoked). */
  async liveOutsideOpenWindows(): Promise<(GatewaySession & { windowId: string })[]> {
    const rows = await this.x
      .selectFrom('gateway_sessions')
      .selectAll()
      .where('result', '=', 'active')
      .where('window_id', 'is not', null)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('maintenance_windows as w')
              .select('w.id')
              .whereRef('w.id', '=', 'gateway_sessions.window_id')
              .where('w.state', '=', 'open'),
          ),
        ),
      )
      .orderBy('started_at')
      .execute();
    return rows.map(sessionFromRow) as (GatewaySession & { windowId: string })[];
  }

  /** Newest first. */
  async list(q: SessionQuery = {}): Promise<{ items: GatewaySession[]; total: number }> {
    let base = this.x.selectFrom('gateway_sessions');
    if (q.deviceId !== undefined) base = base.where('device_id', '=', q.deviceId);
    if (q.userId !== undefined) base = base.where('user_id', '=', q.userId);
    // Names as they were at the time (kept on the session), matched case-insensitively.
    const like = (column: 'username' | 'device_name', text: string) =>
      base.where(sql`lower(${sql.ref(column)})`, 'like', sql`${`%${escapeLike(text.toLowerCase())}%`} escape '\\'`);
    if (q.user) base = like('username', q.user);
    if (q.device) base = like('device_name', q.device);
    if (q.from !== undefined) base = base.where('started_at', '>=', q.from);
    if (q.to !== undefined) base = base.where('started_at', '<', q.to);
    if (q.result !== undefined) base = base.where('result', '=', q.result);
    if (q.transfers)
      base = base.where((eb) =>
        eb.exists(
          eb
            .selectFrom('session_file_operations as f')
            .select('f.id')
            .whereRef('f.session_id', '=', 'gateway_sessions.id')
            .where('f.op', 'in', ['upload', 'download'])
            .where('f.result', '=', 'success'),
        ),
      );
    const total = await base.select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow();
    const rows = await base
      .selectAll()
      .select(withTransfers)
      .orderBy('started_at', 'desc')
      .orderBy('id')
      .limit(q.limit ?? 50)
      .offset(q.offset ?? 0)
      .execute();
    return { items: rows.map(sessionFromRow), total: Number(total.n) };
  }

  // Host keys: trust on first use, one key per device and protocol.

  /** The device's trusted keys, one per protocol. */
  async hostKeys(deviceId: string): Promise<HostKey[]> {
    const rows = await this.x.selectFrom('device_host_keys').selectAll().where('device_id', '=', deviceId).orderBy('protocol').execute();
    return rows.map(hostKeyFromRow);
  }

  async hostKey(deviceId: string, protocol: HostKeyProtocol): Promise<HostKey | undefined> {
    const row = await this.x
      .selectFrom('device_host_keys')
      .selectAll()
      .where('device_id', '=', deviceId)
      .where('protocol', '=', protocol)
      .executeTakeFirst();
    return row && hostKeyFromRow(row);
  }

  /**
   * Stores `key` when the device has none for `protocol` yet and returns the key now
   * trusted: `key` itself (with `firstUse`), or the one stored before. Two first
   * connections at once agree on one key. A pinned key without an algorithm takes the
   * presented one's when their fingerprints match. A key that is the pinned next key
   * replaces the trusted one (returned as `rotated`): once, however many connections
   * present it at the same time; the others find it trusted already.
   */
  async trustOnFirstUse(
    deviceId: string,
    protocol: HostKeyProtocol,
    key: { algorithm: string; fingerprint: string },
  ): Promise<HostKey & { firstUse: boolean; rotated?: HostKey }> {
    const existing = await this.hostKey(deviceId, protocol);
    if (existing) {
      if (existing.algorithm === null && existing.fingerprint === key.fingerprint) {
        await this.x
          .updateTable('device_host_keys')
          .set({ algorithm: key.algorithm })
          .where('device_id', '=', deviceId)
          .where('protocol', '=', protocol)
          .where('fingerprint', '=', key.fingerprint)
          .where('algorithm', 'is', null)
          .execute();
        return { ...existing, algorithm: key.algorithm, firstUse: false };
      }
      if (existing.next?.fingerprint === key.fingerprint && existing.fingerprint !== key.fingerprint) {
        const firstSeen = new Date().toISOString();
        // Conditional on the expected key still being the next one: of connections
        // presenting it at once, one replaces the old key and the others re-read.
        const updated = await this.x
          .updateTable('device_host_keys')
          .set({
            algorithm: key.algorithm,
            fingerprint: key.fingerprint,
            first_seen: firstSeen,
            pinned: 1,
            next_fingerprint: null,
            next_pinned_at: null,
          })
          .where('device_id', '=', deviceId)
          .where('protocol', '=', protocol)
          .where('next_fingerprint', '=', key.fingerprint)
          .executeTakeFirst();
        if (Number(updated.numUpdatedRows) === 1) {
          const trusted = { ...existing, algorithm: key.algorithm, fingerprint: key.fingerprint, firstSeen, pinned: true, next: null };
          return { ...trusted, firstUse: false, rotated: existing };
        }
        const stored = await this.hostKey(deviceId, protocol);
        if (stored) return { ...stored, firstUse: false };
      }
      return { ...existing, firstUse: false };
    }
    const row = {
      device_id: deviceId,
      protocol,
      algorithm: key.algorithm,
      fingerprint: key.fingerprint,
      first_seen: new Date().toISOString(),
      pinned: 0,
      next_fingerprint: null,
      next_pinned_at: null,
    };
    // ON CONFLICT DO NOTHING, not a caught unique violation: inside a PostgreSQL transaction
    // (the broker's, with the audit event) an error would abort the transaction.
    const inserted = await this.x
      .insertInto('device_host_keys')
      .values(row)
      .onConflict((oc) => oc.columns(['device_id', 'protocol']).doNothing())
      .executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 1) return { ...hostKeyFromRow(row), firstUse: true };
    // Another connection stored its key first; forgotten again since: try once more.
    const stored = await this.hostKey(deviceId, protocol);
    return stored ? { ...stored, firstUse: false } : this.trustOnFirstUse(deviceId, protocol, key);
  }

  /**
   * Pins `fingerprint` for the device's `protocol`. On a device with a key it has presented,
   * the pin is the expected next key (`next`): both are accepted until the device presents
   * the pinned one, which then replaces the old ({@link trustOnFirstUse}). With no key yet,
   * or only a pin the device never presented, the pin is the trusted key at once (returned
   * with the key it `replaced`). Pinning the trusted key itself marks it pinned and drops
   * any expected next key.
   */
  async pinHostKey(
    deviceId: string,
    protocol: HostKeyProtocol,
    fingerprint: string,
  ): Promise<{ pinned: HostKey; replaced: HostKey | undefined }> {
    const at = new Date().toISOString();
    const existing = await this.hostKey(deviceId, protocol);
    if (existing && existing.algorithm !== null) {
      const next = existing.fingerprint === fingerprint ? null : { fingerprint, pinnedAt: at };
      const updated = await this.x
        .updateTable('device_host_keys')
        .set(next ? { next_fingerprint: fingerprint, next_pinned_at: at } : { pinned: 1, next_fingerprint: null, next_pinned_at: null })
        .where('device_id', '=', deviceId)
        .where('protocol', '=', protocol)
        .where('fingerprint', '=', existing.fingerprint)
        .executeTakeFirst();
      if (Number(updated.numUpdatedRows) === 1)
        return { pinned: { ...existing, pinned: next ? existing.pinned : true, next }, replaced: undefined };
      // The key changed meanwhile (forgotten, or rotated to its next key): pin on what is there now.
      return this.pinHostKey(deviceId, protocol, fingerprint);
    }
    const row = {
      device_id: deviceId,
      protocol,
      algorithm: null,
      fingerprint,
      first_seen: at,
      pinned: 1,
      next_fingerprint: null,
      next_pinned_at: null,
    };
    await this.x
      .insertInto('device_host_keys')
      .values(row)
      .onConflict((oc) =>
        oc
          .columns(['device_id', 'protocol'])
          .doUpdateSet({ algorithm: null, fingerprint, first_seen: at, pinned: 1, next_fingerprint: null, next_pinned_at: null }),
      )
      .execute();
    return { pinned: hostKeyFromRow(row), replaced: existing };
  }

  /**
   * Forgets the device's key for `protocol`, or every key when none is given; the next
   * connection trusts whatever it presents. Returns the keys forgotten.
   */
  async forgetHostKeys(deviceId: string, protocol?: HostKeyProtocol): Promise<HostKey[]> {
    const rows = await this.x
      .deleteFrom('device_host_keys')
      .where('device_id', '=', deviceId)
      .$if(protocol !== undefined, (q) => q.where('protocol', '=', protocol ?? ''))
      .returningAll()
      .execute();
    return rows.map(hostKeyFromRow).sort((a, b) => a.protocol.localeCompare(b.protocol));
  }
}
