import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import type { TrustedAuditCheckpoint } from '@gatehouse/core';
import type { Db } from './connect.js';
import { escapeLike } from './devices.js';
import { AUDIT_GENESIS_HASH, hashAuditEvent } from './audit-hash.js';
import type { AuditEventTable, Database } from './schema.js';

export type AuditOutcome = 'success' | 'failure' | 'denied';

export interface AuditEventInput {
  actorId?: string | null;
  actorName: string;
  action: string;
  targetType?: string | null;
  targetId?: string | null;
  outcome: AuditOutcome;
  /** Context for a reader. Never a secret: callers pass ids and field names, not values. */
  details?: Record<string, unknown>;
  ip?: string | null;
}

export interface AuditEvent {
  seq: number;
  id: string;
  at: string;
  actorId: string | null;
  actorName: string;
  action: string;
  targetType: string | null;
  targetId: string | null;
  outcome: AuditOutcome;
  details: Record<string, unknown>;
  ip: string | null;
  prevHash: string;
  hash: string;
}

export function auditEventFromRow(row: AuditEventTable): AuditEvent {
  return {
    seq: Number(row.seq),
    id: row.id,
    at: row.at,
    actorId: row.actor_id,
    actorName: row.actor_name,
    action: row.action,
    targetType: row.target_type,
    targetId: row.target_id,
    outcome: row.outcome as AuditOutcome,
    details: JSON.parse(row.details) as Record<string, unknown>,
    ip: row.ip,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

const AUDIT_LOCK_KEY = 0x6761_7465; // "gate": the advisory lock that orders the chain

/**
 * Appends one event to the hash chain. Writers are serialised (an advisory lock on
 * PostgreSQL, the write lock on SQLite) so the chain has one order across processes.
 */
export async function appendAuditEvent(db: Db, input: AuditEventInput, within?: Transaction<Database>): Promise<AuditEvent> {
  // Inside the caller's transaction the event commits with the change it records, or not at all.
  if (within) return appendIn(db, input, within);
  return db.kysely.transaction().execute((trx) => appendIn(db, input, trx));
}

async function appendIn(db: Db, input: AuditEventInput, trx: Transaction<Database>): Promise<AuditEvent> {
  // Take the chain's lock before reading its head: on PostgreSQL an advisory lock, on
  // SQLite a write (which takes the database's single write lock up front).
  if (db.dialect === 'postgres') await sql`select pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`.execute(trx);
  else await sql`update audit_head set seq = seq where id = 1`.execute(trx);
  const head = await trx.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
  const fields = {
    seq: Number(head.seq) + 1,
    id: randomUUID(),
    at: new Date().toISOString(),
    actor_id: input.actorId ?? null,
    actor_name: input.actorName,
    action: input.action,
    target_type: input.targetType ?? null,
    target_id: input.targetId ?? null,
    outcome: input.outcome,
    details: JSON.stringify(input.details ?? {}),
    ip: input.ip ?? null,
    prev_hash: head.hash,
  };
  const row = { ...fields, hash: hashAuditEvent(fields) };
  await trx.insertInto('audit_events').values(row).execute();
  await trx.updateTable('audit_head').set({ seq: row.seq, hash: row.hash }).where('id', '=', 1).execute();
  return auditEventFromRow(row);
}

export interface AuditQuery {
  afterSeq?: number | undefined;
  beforeSeq?: number | undefined;
  action?: string | undefined;
  /** Part of the action, case-insensitive ("login" finds auth.login and auth.login_locked). */
  actionContains?: string | undefined;
  actorName?: string | undefined;
  targetId?: string | undefined;
  outcome?: AuditOutcome | undefined;
  limit?: number | undefined;
  order?: 'asc' | 'desc';
}

export async function listAuditEvents(db: Db, q: AuditQuery = {}): Promise<AuditEvent[]> {
  let query = db.kysely.selectFrom('audit_events').selectAll();
  if (q.afterSeq !== undefined) query = query.where('seq', '>', q.afterSeq);
  if (q.beforeSeq !== undefined) query = query.where('seq', '<', q.beforeSeq);
  if (q.action) query = query.where('action', '=', q.action);
  if (q.actionContains) {
    const like = `%${escapeLike(q.actionContains.toLowerCase())}%`;
    query = query.where(sql`lower(action)`, 'like', sql`${like} escape '\\'`);
  }
  if (q.actorName) query = query.where('actor_name', '=', q.actorName);
  if (q.targetId) query = query.where('target_id', '=', q.targetId);
  if (q.outcome) query = query.where('outcome', '=', q.outcome);
  const rows = await query
    .orderBy('seq', q.order ?? 'asc')
    .limit(q.limit ?? 100)
    .execute();
  return rows.map(auditEventFromRow);
}

/**
 * Readable names of the events' targets that still exist, keyed `type:id`: a device as
 * project/device, a project by its name, a user by user name.
 */
export async function auditTargetNames(db: Db, events: readonly AuditEvent[]): Promise<Map<string, string>> {
  const idsOf = (type: string) => [...new Set(events.flatMap((e) => (e.targetType === type && e.targetId ? [e.targetId] : [])))];
  const names = new Map<string, string>();
  const devices = idsOf('device');
  if (devices.length > 0) {
    const rows = await db.kysely
      .selectFrom('devices as d')
      .innerJoin('projects as p', 'p.id', 'd.project_id')
      .select(['d.id as id', 'd.name as name', 'p.name as project'])
      .where('d.id', 'in', devices)
      .execute();
    for (const r of rows) names.set(`device:${r.id}`, `${r.project}/${r.name}`);
  }
  const projects = idsOf('project');
  if (projects.length > 0) {
    const rows = await db.kysely.selectFrom('projects').select(['id', 'name']).where('id', 'in', projects).execute();
    for (const r of rows) names.set(`project:${r.id}`, r.name);
  }
  const users = idsOf('user');
  if (users.length > 0) {
    const rows = await db.kysely.selectFrom('users').select(['id', 'username']).where('id', 'in', users).execute();
    for (const r of rows) names.set(`user:${r.id}`, r.username);
  }
  return names;
}

/** Every event, oldest first, read a page at a time: for exports of any size. */
export async function* allAuditEvents(db: Db, pageSize = 1000): AsyncGenerator<AuditEvent> {
  let after = 0;
  for (;;) {
    const page = await listAuditEvents(db, { afterSeq: after, order: 'asc', limit: pageSize });
    if (page.length === 0) return;
    yield* page;
    after = page[page.length - 1]?.seq ?? after;
  }
}

export type AuditVerification =
  | { ok: true; events: number; headHash: string; checkpoint?: { seq: number; at: string; keyId: string } }
  | { ok: false; events: number; seq: number; problem: string };

export interface VerifyAuditOptions {
  onProgress?: ((checked: number) => void) | undefined;
  /**
   * A signed checkpoint the chain must still hold: its event, with exactly its hash, and
   * a head not behind it. This catches what the chain alone cannot: the newest events
   * deleted with the head rewound, or history edited and re-hashed from there on.
   */
  checkpoint?: TrustedAuditCheckpoint | undefined;
  /** Walk only the events after the checkpoint (it must still hold): to check what was appended since. */
  fromCheckpoint?: boolean | undefined;
}

/** The chain's head as `audit_head` records it. */
export async function readAuditHead(db: Db): Promise<{ seq: number; hash: string }> {
  const head = await db.kysely.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirstOrThrow();
  return { seq: Number(head.seq), hash: head.hash };
}

/**
 * Walks the whole chain in order and reports the first event that was edited, deleted,
 * inserted or moved, and a chain cut short after its last event. The head is read before
 * the walk and again after it, so events appended while the walk runs are not mistaken
 * for tampering, while an event past the head (written without the chain's writer) is.
 * With a checkpoint, the chain must also still hold the event it signed.
 */
export async function verifyAuditChain(db: Db, options: VerifyAuditOptions = {}): Promise<AuditVerification> {
  const { onProgress, checkpoint } = options;
  const readHead = () => db.kysely.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirst();
  const headBefore = await readHead();
  const startSeq = headBefore ? Number(headBefore.seq) : 0;
  // What a checkpoint shows that the chain alone cannot (both only called with one).
  const rewritten = (seq: number, c: TrustedAuditCheckpoint) => ({
    ok: false as const,
    events: seq - 1,
    seq,
    problem: `event ${seq} is not the event the checkpoint of ${c.at} signed (its hash differs): the chain up to event ${seq} was rewritten`,
  });
  const truncated = (last: number, c: TrustedAuditCheckpoint) => ({
    ok: false as const,
    events: last,
    seq: last + 1,
    problem: `the chain was truncated after event ${last}: the checkpoint of ${c.at} signed event ${c.seq}, which is gone (the newest events were deleted)`,
  });
  let expectedSeq = 1;
  let prevHash = AUDIT_GENESIS_HASH;
  let checked = 0;
  let firstPage = true;
  if (checkpoint && options.fromCheckpoint && checkpoint.seq > 0) {
    const held = await db.kysely.selectFrom('audit_events').selectAll().where('seq', '=', checkpoint.seq).executeTakeFirst();
    if (!held) return truncated(Math.min(startSeq, checkpoint.seq - 1), checkpoint);
    if (held.hash !== checkpoint.hash || hashAuditEvent({ ...held, seq: Number(held.seq) }) !== held.hash)
      return rewritten(checkpoint.seq, checkpoint);
    expectedSeq = checkpoint.seq + 1;
    prevHash = checkpoint.hash;
    checked = checkpoint.seq;
    firstPage = false;
  }
  for (;;) {
    let query = db.kysely.selectFrom('audit_events').selectAll();
    // The first page of a whole walk has no lower bound, so that an event forged below seq 1 is seen too.
    if (!firstPage) query = query.where('seq', '>=', expectedSeq);
    firstPage = false;
    const rows = await query.orderBy('seq', 'asc').limit(1000).execute();
    if (rows.length === 0) break;
    for (const raw of rows) {
      const row = { ...raw, seq: Number(raw.seq) };
      if (row.seq < expectedSeq) {
        return { ok: false, events: checked, seq: row.seq, problem: `event ${row.seq} lies before the first event: it was inserted` };
      }
      if (row.seq !== expectedSeq) {
        return {
          ok: false,
          events: checked,
          seq: expectedSeq,
          problem: `event ${expectedSeq} is missing (the next one is ${row.seq}): events were deleted`,
        };
      }
      if (row.prev_hash !== prevHash) {
        return {
          ok: false,
          events: checked,
          seq: row.seq,
          problem: `event ${row.seq} does not follow event ${row.seq - 1}: events were deleted, inserted or reordered`,
        };
      }
      if (hashAuditEvent(row) !== row.hash) {
        return {
          ok: false,
          events: checked,
          seq: row.seq,
          problem: `event ${row.seq} was edited after it was written (its hash does not match its content)`,
        };
      }
      if (checkpoint && row.seq === checkpoint.seq && row.hash !== checkpoint.hash) return rewritten(row.seq, checkpoint);
      if (row.seq === startSeq && row.hash !== headBefore?.hash) {
        return {
          ok: false,
          events: checked,
          seq: row.seq,
          problem: `event ${row.seq} is not the one the chain's head records: it or the head was altered`,
        };
      }
      prevHash = row.hash;
      expectedSeq = row.seq + 1;
      checked += 1;
    }
    onProgress?.(checked);
  }
  if (checkpoint && checked < checkpoint.seq) return truncated(checked, checkpoint);
  if (headBefore && startSeq === 0 && headBefore.hash !== AUDIT_GENESIS_HASH) {
    return {
      ok: false,
      events: 0,
      seq: 1,
      problem: "the chain's head records no event but not the empty chain's hash: the head was altered",
    };
  }
  if (!headBefore || checked < startSeq) {
    return {
      ok: false,
      events: checked,
      seq: checked + 1,
      problem: `the chain ends at event ${checked} but its head records event ${headBefore ? startSeq : 'none'}: the newest events were deleted`,
    };
  }
  // Each append moves the head in the transaction that inserts the event, so every event
  // the walk saw is at or below the head read after it, unless it was written around it.
  const headAfter = await readHead();
  const endSeq = headAfter ? Number(headAfter.seq) : 0;
  if (checked > endSeq) {
    return {
      ok: false,
      events: endSeq,
      seq: endSeq + 1,
      problem: `event ${endSeq + 1} lies past the chain's head (event ${endSeq}): it was inserted`,
    };
  }
  return {
    ok: true,
    events: checked,
    headHash: prevHash,
    ...(checkpoint ? { checkpoint: { seq: checkpoint.seq, at: checkpoint.at, keyId: checkpoint.keyId } } : {}),
  };
}
