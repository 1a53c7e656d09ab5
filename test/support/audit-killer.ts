import { sql } from 'kysely';
import type { TestApp } from './app.js';

/**
 * Arms the test app's database to refuse, mid-transaction, the insert of the audit events
 * whose actions `killAudit` names (a trigger), so a test can check that a write and its
 * audit event commit together or not at all (Services.withAudit). Once per database.
 */
export async function armAuditKiller(t: TestApp): Promise<void> {
  const k = t.database.db.kysely;
  await sql`create table kill_audit (action text primary key)`.execute(k);
  if (t.database.db.dialect === 'sqlite') {
    await sql`create trigger kill_audit before insert on audit_events
      when exists (select 1 from kill_audit where action = new.action)
      begin select raise(abort, 'audit append killed by the test'); end`.execute(k);
  } else {
    await sql`create function kill_audit() returns trigger language plpgsql as $$
      begin
        if exists (select 1 from kill_audit where action = new.action) then
          raise exception 'audit append killed by the test';
        end if;
        return new;
      end $$`.execute(k);
    await sql`create trigger kill_audit before insert on audit_events for each row execute function kill_audit()`.execute(k);
  }
}

/** From now on the audit event `action` cannot be appended. */
export const killAudit = (t: TestApp, action: string) =>
  sql`insert into kill_audit (action) values (${action})`.execute(t.database.db.kysely);
/** Every audit event can be appended again. */
export const spareAudit = (t: TestApp) => sql`delete from kill_audit`.execute(t.database.db.kysely);
