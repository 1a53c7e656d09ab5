import { hashAuditEvent, type Db } from '@gatehouse/db';

/**
 * What someone who can write the database can do to the audit chain without the chain
 * alone noticing. Edits event `from` and re-hashes it and every later event with the
 * project's own function, then moves the head to match.
 */
export async function rewriteAuditFrom(db: Db, from: number): Promise<void> {
  const rows = await db.kysely
    .selectFrom('audit_events')
    .selectAll()
    .where('seq', '>=', from - 1)
    .orderBy('seq')
    .execute();
  let prevHash = rows[0]?.hash ?? '';
  let head = { seq: 0, hash: '' };
  for (const raw of rows.slice(1)) {
    const row = { ...raw, seq: Number(raw.seq), prev_hash: prevHash };
    if (row.seq === from) row.details = JSON.stringify({ note: 'nothing happened' });
    const hash = hashAuditEvent(row);
    await db.kysely
      .updateTable('audit_events')
      .set({ details: row.details, prev_hash: prevHash, hash })
      .where('seq', '=', row.seq)
      .execute();
    prevHash = hash;
    head = { seq: row.seq, hash };
  }
  await db.kysely.updateTable('audit_head').set(head).where('id', '=', 1).execute();
}

/** The other rewrite: deletes the events after `keep` and rewinds the head to event `keep`. */
export async function truncateAuditAfter(db: Db, keep: number): Promise<void> {
  await db.kysely.deleteFrom('audit_events').where('seq', '>', keep).execute();
  const kept = await db.kysely.selectFrom('audit_events').select(['seq', 'hash']).where('seq', '=', keep).executeTakeFirstOrThrow();
  await db.kysely.updateTable('audit_head').set({ seq: keep, hash: kept.hash }).where('id', '=', 1).execute();
}
