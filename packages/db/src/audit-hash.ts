import { createHash } from 'node:crypto';

/** The `prev_hash` of the first audit event. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

/** The fields of an audit event that its hash covers, in a fixed order. */
export interface HashedAuditFields {
  seq: number;
  id: string;
  at: string;
  actor_id: string | null;
  actor_name: string;
  action: string;
  target_type: string | null;
  target_id: string | null;
  outcome: string;
  details: string;
  ip: string | null;
  prev_hash: string;
}

export function hashAuditEvent(e: HashedAuditFields): string {
  const canonical = JSON.stringify([
    e.seq,
    e.id,
    e.at,
    e.actor_id,
    e.actor_name,
    e.action,
    e.target_type,
    e.target_id,
    e.outcome,
    e.details,
    e.ip,
    e.prev_hash,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}
