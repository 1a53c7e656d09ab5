import type { Role, Visibility } from '@gatehouse/core';
import {
  AccountCredentials,
  Agents,
  appendAuditEvent,
  BreakGlassRuns,
  DesktopTokens,
  Gateways,
  GatewaySessions,
  Inventory,
  MaintenanceWindows,
  RotationPolicies,
  RunbookRuns,
  SsoLogins,
  Runbooks,
  Settings,
  Users,
  type AuditEventInput,
  type Database,
  type Db,
  type TokenScope,
  type User,
  type Vault,
} from '@gatehouse/db';
import type { RecordingHash } from '@gatehouse/gateway';
import type { Transaction } from 'kysely';
import type { FastifyRequest } from 'fastify';
import type { ServerConfig } from './config.js';
import type { Logger } from './logger.js';
import type { RefusalAudit } from './refusal-audit.js';
import type { EndedSession } from './runbooks/after-session-rotation.js';
import type { RunbookService } from './runbooks/service.js';

/** Everything a route needs, built once at start. */
import type { Metrics } from './metrics.js';
import type { DatabaseHealth } from './database-health.js';

export interface Services {
  config: ServerConfig;
  db: Db;
  /** This server process among replicas (`host:pid:uuid`): the sessions its built-in gateway holds carry it. */
  replica: string;
  /** Whether the database answers (and is migrated): `/readyz`, and the gateways' sign-ins. */
  database: DatabaseHealth;
  vault: Vault;
  inventory: Inventory;
  users: Users;
  settings: Settings;
  /** Maintenance windows, their decisions and hook runs, and projects' approvers. */
  maintenance: MaintenanceWindows;
  /** Host agents and their join tokens. */
  agents: Agents;
  /** Runbook documents administrators added (built-ins are not stored). */
  storedRunbooks: Runbooks;
  /** Runbook and rotation runs, their items and the per-device lock. */
  runbookRuns: RunbookRuns;
  /** Pending and previous credentials of rotations. */
  accountCredentials: AccountCredentials;
  /** Scheduled rotation per project and device. */
  rotationPolicies: RotationPolicies;
  /** One-time passwords of native desktop clients (VNC). */
  desktopTokens: DesktopTokens;
  /** Runbooks, their runs and rotations (the engine through the built-in gateway). */
  runbooks: RunbookService;
  /** SHA-256 of the HTTPS certificate's public key (SPKI), hex; null when the app serves no TLS (inject-only tests). */
  serverSpkiFingerprint: string | null;
  /** The maintenance lifecycle (set once it runs): `runSoon()` asks for a tick now, e.g. after a revocation. */
  maintenanceLifecycle?: { runSoon(): void };
  /** Rotation after sessions: the gateway broker tells it of every session end. */
  afterSessionRotation?: { sessionEnded(s: EndedSession): void };
  /** Recording signatures: the brokers tell it of every recording finished here (a session's end, a remote gateway's fetched). */
  recordingSignatures?: { finished(sessionId: string, written?: RecordingHash): void };
  /** SFTP session logs for the recordings' object store (set when there is one): told of every SFTP session's end. */
  sftpLogs?: { finished(sessionId: string): void };
  /** Recording uploads to the object store (set when there is one): told of every recording the built-in gateway starts writing. */
  recordingUploads?: { started(sessionId: string, relative: string): void };
  logger: Logger;
  /** Prometheus metrics of this server instance (GET /metrics). */
  metrics?: Metrics;
  /**
   * Appends an audit event, attributed to the request's user and address when given, and
   * to how the user signed in: `details.via` is "session" or "token" (with `details.tokenId`).
   */
  audit(req: FastifyRequest | null, event: AuditDraft): Promise<void>;
  /**
   * Every write goes through here: `write` gets the repositories bound to one transaction
   * and an `audit` that queues events; the events are appended to the chain in that same
   * transaction, so the change and its audit events commit together or not at all.
   */
  withAudit<T>(req: FastifyRequest | null, write: (tx: TxRepositories, audit: (event: AuditDraft) => void) => Promise<T>): Promise<T>;
  /** Audits refused requests (bad credentials, CSRF, probes, rate limits) at a bounded rate. */
  refusals: RefusalAudit;
}

/** An audit event as a route gives it: who and from where are filled in from the request. */
export type AuditDraft = Omit<AuditEventInput, 'actorName'> & { actorName?: string };

/** The repositories of one transaction (`Services.withAudit`). */
export interface TxRepositories {
  trx: Transaction<Database>;
  inventory: Inventory;
  users: Users;
  settings: Settings;
  gateways: Gateways;
  gatewaySessions: GatewaySessions;
  breakGlassRuns: BreakGlassRuns;
  maintenance: MaintenanceWindows;
  agents: Agents;
  storedRunbooks: Runbooks;
  runbookRuns: RunbookRuns;
  accountCredentials: AccountCredentials;
  rotationPolicies: RotationPolicies;
  desktopTokens: DesktopTokens;
  /** OIDC sign-ins under way and CLI login requests. */
  sso: SsoLogins;
}

/** Who is calling, and how they proved it. */
export interface AuthContext {
  user: User;
  via: 'session' | 'token';
  sessionToken?: string;
  tokenId?: string;
  /** What the API token may do, when one was sent. */
  tokenScope?: TokenScope;
  visibility: Visibility;
}

/** What a route declares about who may call it. */
export type Access = 'public' | 'authenticated' | readonly Role[];

declare module 'fastify' {
  interface FastifyRequest {
    auth: AuthContext | null;
  }
  interface FastifyContextConfig {
    access?: Access;
  }
}

/** The event as stored: the request's user and address, and how the user signed in. */
function attribute(req: FastifyRequest | null, event: AuditDraft): AuditEventInput {
  const auth = req?.auth ?? null;
  // Which credential acted: a stolen token and a hijacked session are investigated differently.
  const via = auth ? { via: auth.via, ...(auth.tokenId !== undefined ? { tokenId: auth.tokenId } : {}) } : {};
  return {
    ...event,
    actorId: event.actorId !== undefined ? event.actorId : (auth?.user.id ?? null),
    actorName: event.actorName ?? auth?.user.username ?? 'anonymous',
    ip: event.ip ?? req?.ip ?? null,
    ...(auth ? { details: { ...event.details, ...via } } : {}),
  };
}

/** Appends one event, timed for `gatehouse_audit_append_seconds` when metrics are given. */
const timedAppend = (metrics: Metrics | undefined, append: () => Promise<unknown>) => (metrics ? metrics.timeAudit(append) : append());

export function createAudit(db: Db, logger: Logger, metrics?: Metrics): Services['audit'] {
  return async (req, event) => {
    try {
      await timedAppend(metrics, () => appendAuditEvent(db, attribute(req, event)));
    } catch (error) {
      // An audit write that fails must be loud: the caller's action still fails.
      logger.error({ err: error, action: event.action }, 'audit event could not be written');
      throw error;
    }
  };
}

export function createWithAudit(db: Db, vault: Vault, logger: Logger, metrics?: Metrics): Services['withAudit'] {
  return (req, write) =>
    db.kysely.transaction().execute(async (trx) => {
      const events: AuditDraft[] = [];
      const result = await write(
        {
          trx,
          inventory: new Inventory(db, vault, trx),
          users: new Users(db, trx),
          settings: new Settings(db, trx),
          gateways: new Gateways(db, trx),
          gatewaySessions: new GatewaySessions(db, trx),
          breakGlassRuns: new BreakGlassRuns(db, trx),
          maintenance: new MaintenanceWindows(db, trx),
          agents: new Agents(db, trx),
          storedRunbooks: new Runbooks(trx),
          runbookRuns: new RunbookRuns(trx),
          accountCredentials: new AccountCredentials(vault, trx),
          rotationPolicies: new RotationPolicies(trx),
          desktopTokens: new DesktopTokens(vault, trx),
          sso: new SsoLogins(db, trx),
        },
        (event) => events.push(event),
      );
      for (const event of events) {
        try {
          await timedAppend(metrics, () => appendAuditEvent(db, attribute(req, event), trx));
        } catch (error) {
          // The change is rolled back with it: nothing is written that the log does not record.
          logger.error({ err: error, action: event.action }, 'audit event could not be written; the change is rolled back');
          throw error;
        }
      }
      return result;
    });
}
