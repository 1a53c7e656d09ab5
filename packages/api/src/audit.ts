import { z } from 'zod';
import { fileAnswer, listOf, timestamp } from './common.js';

/** The audit log (`/audit/*`, administrators and auditors): its events, the hash chain's check, signed checkpoints. */

export const auditOutcome = z.enum(['success', 'failure', 'denied']);

export const auditEventQuery = z.strictObject({
  afterSeq: z.coerce.number().int().min(0).optional(),
  beforeSeq: z.coerce.number().int().min(1).optional(),
  action: z.string().max(100).optional().describe('the action, exactly'),
  actionContains: z.string().max(100).optional().describe('part of the action, case-insensitive ("login" finds auth.login)'),
  /** The actor's name. */
  actor: z.string().max(100).optional(),
  targetId: z.string().max(100).optional(),
  outcome: auditOutcome.optional(),
  order: z.enum(['asc', 'desc']).default('desc'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});
export type AuditEventQuery = z.input<typeof auditEventQuery>;

export const auditEvent = z.object({
  seq: z.number().int(),
  id: z.string(),
  at: timestamp,
  actorId: z.string().nullable(),
  actorName: z.string(),
  action: z.string(),
  targetType: z.string().nullable(),
  targetId: z.string().nullable(),
  outcome: auditOutcome,
  /** Context for a reader: ids and field names, never a secret. */
  details: z.record(z.string(), z.unknown()),
  ip: z.string().nullable(),
  /** The hash chain: the previous event's hash, and this one's. */
  prevHash: z.string(),
  hash: z.string(),
});
export type AuditEvent = z.infer<typeof auditEvent>;

/** An event as the list shows it: with its target's name when the target still exists. */
export const auditEventListed = auditEvent.extend({
  /** The target's readable name (a device as project/device, a project, a user), or null. */
  targetName: z.string().nullable(),
});
export type AuditEventListed = z.infer<typeof auditEventListed>;

export const auditEventList = listOf(auditEventListed);
export type AuditEventList = z.infer<typeof auditEventList>;

/** `GET /audit/export`: every event as one JSON line (an auditEvent), oldest first. */
export const auditExport = fileAnswer('application/x-ndjson', 'One audit event (an auditEvent) per line, oldest first');

/** The result of walking the hash chain: where it breaks, or that it holds (and the checkpoint it was checked against). */
export const auditVerification = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    events: z.number().int(),
    headHash: z.string(),
    checkpoint: z.object({ seq: z.number().int(), at: timestamp, keyId: z.string() }).optional(),
  }),
  z.object({ ok: z.literal(false), events: z.number().int(), seq: z.number().int(), problem: z.string() }),
]);
export type AuditVerification = z.infer<typeof auditVerification>;

/** `POST /audit/verify`: a checkpoint kept outside the database, or a break-glass manifest that holds one. */
export const auditVerifyBody = z.strictObject({ checkpoint: z.unknown() });
export type AuditVerifyBody = z.infer<typeof auditVerifyBody>;

/** The chain's head signed with the checkpoint key (Ed25519). */
export const auditCheckpoint = z.object({
  format: z.literal('gatehouse-audit-checkpoint/1'),
  seq: z.number().int(),
  hash: z.string(),
  at: timestamp,
  keyId: z.string(),
  signature: z.string(),
});
export type AuditCheckpoint = z.infer<typeof auditCheckpoint>;

/** `GET /audit/checkpoint`: a checkpoint signed now and the public key that verifies it; keep both outside the database. */
export const signedAuditCheckpoint = z.object({ checkpoint: auditCheckpoint, publicKeyPem: z.string(), keyId: z.string() });
export type SignedAuditCheckpoint = z.infer<typeof signedAuditCheckpoint>;
