import { randomUUID } from 'node:crypto';
import { sql, type Transaction } from 'kysely';
import { GatehouseError, type TrustedAuditCheckpoint } from '@gatehouse/core';
import type { Db, Tx } from './connect.js';
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

/**
 * Appends one event to the hash chain. Writers are serialised (the head row's lock on
 * PostgreSQL, the write lock on SQLite) so the chain has one order across processes.
 */
export async function appendAuditEvent(db: Db, input: AuditEventInput, within?: Transaction<Database>): Promise<AuditEvent> {
  // Inside the caller's transaction the event commits with the change it records, or not at all.
  if (within) return appendIn(db, input, within);
  return db.kysely.transaction().execute((trx) => appendIn(db, input, trx));
}

/**
 * The event's details with its target's name as it is now (`targetName`), unless the caller
 * gave one: the event stays readable after its target is deleted. A route that deletes the
 * target records its name itself (read before the delete: see targetName).
 */
async function withTargetName(input: AuditEventInput, trx: Transaction<Database>): Promise<Record<string, unknown>> {
  const details = input.details ?? {};
  if (!input.targetType || !input.targetId || details.targetName !== undefined) return details;
  const name = await targetName(trx, input.targetType, input.targetId);
  return name === undefined ? details : { ...details, targetName: name };
}

async function appendIn(db: Db, input: AuditEventInput, trx: Transaction<Database>): Promise<AuditEvent> {
  const details = await withTargetName(input, trx);
  // Take the chain's lock and read its head in one statement: updating the head row locks
  // it until the transaction ends (on SQLite the update takes the database's write lock),
  // and a writer that waited reads the head its predecessor committed (READ COMMITTED
  // re-reads an updated row before it returns it). Writers are serialised as before.
  const { rows } = await sql<{
    seq: number | string;
    hash: string;
  }>`update audit_head set seq = seq where id = 1 returning seq, hash`.execute(trx);
  const head = rows[0];
  if (!head) throw new GatehouseError('INTERNAL', 'The audit chain has no head row (audit_head id 1): the database was not migrated.');
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
    details: JSON.stringify(details),
    ip: input.ip ?? null,
    prev_hash: head.hash,
  };
  const row = { ...fields, hash: hashAuditEvent(fields) };
  const newHead = { seq: row.seq, hash: row.hash };
  if (db.dialect === 'postgres') {
    // One round trip: the insert is a data-modifying WITH of the head's update.
    await trx
      .with('inserted', (c) => c.insertInto('audit_events').values(row))
      .updateTable('audit_head')
      .set(newHead)
      .where('id', '=', 1)
      .execute();
  } else {
    // SQLite has no data-modifying WITH; its statements are calls in this process, not round trips.
    await trx.insertInto('audit_events').values(row).execute();
    await trx.updateTable('audit_head').set(newHead).where('id', '=', 1).execute();
  }
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

/** An event's target: its kind (`device`, `account`, …) and id. */
export interface AuditTarget {
  type: string;
  id: string;
}

/**
 * Readable names of targets that exist, keyed `type:id`: a device as project/device, an
 * account as project/device:user name, a project, gateway or token by its name, a user by
 * user name, a maintenance window as project: reason, a grant as user → what it grants, a
 * session as user → project/device:account, a runbook run by its runbook.
 */
export async function targetNames(db: Tx, targets: readonly AuditTarget[]): Promise<Map<string, string>> {
  const idsOf = (type: string) => [...new Set(targets.flatMap((t) => (t.type === type ? [t.id] : [])))];
  const names = new Map<string, string>();
  const each = async <R>(type: string, read: (ids: string[]) => Promise<R[]>, name: (row: R) => [id: string, name: string]) => {
    const ids = idsOf(type);
    if (ids.length === 0) return;
    for (const row of await read(ids)) {
      const [id, text] = name(row);
      names.set(`${type}:${id}`, text);
    }
  };
  const devices = (ids: string[]) =>
    db
      .selectFrom('devices as d')
      .innerJoin('projects as p', 'p.id', 'd.project_id')
      .select(['d.id as id', 'd.name as name', 'p.name as project'])
      .where('d.id', 'in', ids)
      .execute();
  await each('device', devices, (r) => [r.id, `${r.project}/${r.name}`]);
  await each(
    'account',
    (ids) =>
      db
        .selectFrom('accounts as a')
        .innerJoin('devices as d', 'd.id', 'a.device_id')
        .innerJoin('projects as p', 'p.id', 'd.project_id')
        .select(['a.id as id', 'a.username as username', 'd.name as device', 'p.name as project'])
        .where('a.id', 'in', ids)
        .execute(),
    (r) => [r.id, `${r.project}/${r.device}:${r.username}`],
  );
  await each(
    'project',
    (ids) => db.selectFrom('projects').select(['id', 'name']).where('id', 'in', ids).execute(),
    (r) => [r.id, r.name],
  );
  await each(
    'user',
    (ids) => db.selectFrom('users').select(['id', 'username']).where('id', 'in', ids).execute(),
    (r) => [r.id, r.username],
  );
  await each(
    'gateway',
    (ids) => db.selectFrom('gateways').select(['id', 'name']).where('id', 'in', ids).execute(),
    (r) => [r.id, r.name],
  );
  await each(
    'token',
    (ids) =>
      db
        .selectFrom('api_tokens as t')
        .innerJoin('users as u', 'u.id', 't.user_id')
        .select(['t.id as id', 't.name as name', 'u.username as owner'])
        .where('t.id', 'in', ids)
        .execute(),
    (r) => [r.id, `${r.name} (${r.owner})`],
  );
  await each(
    'maintenance_window',
    (ids) =>
      db
        .selectFrom('maintenance_windows as w')
        .innerJoin('projects as p', 'p.id', 'w.project_id')
        .select(['w.id as id', 'w.reason as reason', 'p.name as project'])
        .where('w.id', 'in', ids)
        .execute(),
    (r) => [r.id, `${r.project}: ${r.reason.length > 60 ? `${r.reason.slice(0, 59)}…` : r.reason}`],
  );
  await each(
    'session',
    (ids) =>
      db
        .selectFrom('gateway_sessions')
        .select(['id', 'username', 'project_name', 'device_name', 'account_username'])
        .where('id', 'in', ids)
        .execute(),
    (r) => [r.id, `${r.username} → ${r.project_name}/${r.device_name}${r.account_username ? `:${r.account_username}` : ''}`],
  );
  await each(
    'runbook_run',
    (ids) => db.selectFrom('runbook_runs').select(['id', 'runbook_name']).where('id', 'in', ids).execute(),
    (r) => [r.id, r.runbook_name],
  );
  await each(
    'grant',
    (ids) =>
      db
        .selectFrom('grants as g')
        .innerJoin('users as u', 'u.id', 'g.user_id')
        .innerJoin('projects as p', 'p.id', 'g.project_id')
        .leftJoin('devices as d', 'd.id', 'g.device_id')
        .leftJoin('accounts as a', 'a.id', 'g.account_id')
        .select(['g.id as id', 'u.username as user', 'p.name as project', 'd.name as device', 'a.username as account'])
        .where('g.id', 'in', ids)
        .execute(),
    (g) => [g.id, `${g.user} → ${g.project}${g.device ? `/${g.device}` : ''}${g.account ? `:${g.account}` : ''}`],
  );
  return names;
}

/** The readable name of one target that exists (see targetNames), or undefined. */
export async function targetName(db: Tx, type: string, id: string): Promise<string | undefined> {
  return (await targetNames(db, [{ type, id }])).get(`${type}:${id}`);
}

/**
 * Readable names of the events' targets, keyed `type:id`: the target's name now when it
 * still exists, else the name the event recorded when it was written (`details.targetName`),
 * so the events of a deleted device or account stay readable.
 */
export async function auditTargetNames(db: Db, events: readonly AuditEvent[]): Promise<Map<string, string>> {
  const targets = events.flatMap((e) => (e.targetType && e.targetId ? [{ type: e.targetType, id: e.targetId }] : []));
  const names = await targetNames(db.kysely, targets);
  for (const e of events) {
    const key = `${e.targetType}:${e.targetId}`;
    const recorded = e.details.targetName;
    if (!names.has(key) && typeof recorded === 'string') names.set(key, recorded);
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
