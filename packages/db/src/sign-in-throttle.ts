import { sql, type RawBuilder } from 'kysely';
import { inTransaction, type Db, type Tx } from './connect.js';

/**
 * When failed attempts throttle: after `threshold` failures in a row, each further one
 * starts a delay, `firstDelayMs` and doubling up to `maxDelayMs`, during which attempts
 * are refused without being checked. A count left alone for `maxDelayMs` (no failure,
 * no delay in force) is forgotten.
 */
export interface ThrottleRule {
  threshold: number;
  firstDelayMs: number;
  maxDelayMs: number;
}

/** An attempt let through (counted as a failure until released), or one refused. */
export type ThrottleClaim = { ok: true; failures: number; throttledUntil: string | null } | { ok: false };

/** A counter: one user name from one address, every name from one address (`username: ''`), or one account. */
export type ThrottleKey = { username: string; source: string } | { userId: string };

/**
 * Failed password attempts, counted so that concurrent attempts cannot slip past the
 * count: an attempt is claimed with one conditional statement before the password is
 * checked (count + 1, and the delay when the count reaches the threshold, only where no
 * delay is in force), and released or reset afterwards when it turns out right. Per
 * address and per user name from an address in `sign_in_throttle`; per account (every
 * address together) in `users.failed_logins` and `users.locked_until`.
 */
export class SignInThrottle {
  constructor(
    readonly db: Db,
    private readonly x: Tx = db.kysely,
  ) {}

  /** Counts an attempt unless a delay is in force; the password may be checked only when ok. */
  async claim(key: ThrottleKey, rule: ThrottleRule, now = new Date()): Promise<ThrottleClaim> {
    const at = now.toISOString();
    const forgetBefore = new Date(now.getTime() - rule.maxDelayMs).toISOString();
    if ('userId' in key) {
      const count = sql<number>`case when coalesce(locked_until, last_failed_login_at) < ${forgetBefore} then 1 else failed_logins + 1 end`;
      const row = await this.x
        .updateTable('users')
        .set({ failed_logins: count, locked_until: delayAfter(count, rule, now), last_failed_login_at: at })
        .where('id', '=', key.userId)
        .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', at)]))
        .returning(['failed_logins', 'locked_until'])
        .executeTakeFirst();
      return row ? { ok: true, failures: row.failed_logins, throttledUntil: row.locked_until } : { ok: false };
    }
    const count = sql<number>`case when coalesce(sign_in_throttle.throttled_until, sign_in_throttle.last_failure_at) < ${forgetBefore} then 1 else sign_in_throttle.failures + 1 end`;
    const row = await this.x
      .insertInto('sign_in_throttle')
      .values({
        username: key.username,
        source: key.source,
        failures: 1,
        throttled_until: delayAfter(sql<number>`1`, rule, now),
        last_failure_at: at,
        last_success_at: null,
      })
      .onConflict((oc) =>
        oc
          .columns(['username', 'source'])
          .doUpdateSet({ failures: count, throttled_until: delayAfter(count, rule, now), last_failure_at: at })
          .where((eb) => eb.or([eb('sign_in_throttle.throttled_until', 'is', null), eb('sign_in_throttle.throttled_until', '<=', at)])),
      )
      .returning(['failures', 'throttled_until'])
      .executeTakeFirst();
    return row ? { ok: true, failures: row.failures, throttledUntil: row.throttled_until } : { ok: false };
  }

  /** Takes back a claimed attempt that was not a failure after all (a right password). */
  async release(key: ThrottleKey, rule: ThrottleRule): Promise<void> {
    if ('userId' in key) {
      await this.x
        .updateTable('users')
        .set({
          failed_logins: sql`case when failed_logins > 0 then failed_logins - 1 else 0 end`,
          locked_until: sql`case when failed_logins - 1 < ${rule.threshold} then null else locked_until end`,
        })
        .where('id', '=', key.userId)
        .execute();
      return;
    }
    await this.x
      .updateTable('sign_in_throttle')
      .set({
        failures: sql`case when failures > 0 then failures - 1 else 0 end`,
        throttled_until: sql`case when failures - 1 < ${rule.threshold} then null else throttled_until end`,
      })
      .where('username', '=', key.username)
      .where('source', '=', key.source)
      .execute();
  }

  /** A sign-in of this name from this address succeeded: its count starts again, and the address is familiar. */
  async succeeded(key: { username: string; source: string }, now = new Date()): Promise<void> {
    await this.x
      .updateTable('sign_in_throttle')
      .set({ failures: 0, throttled_until: null, last_success_at: now.toISOString() })
      .where('username', '=', key.username)
      .where('source', '=', key.source)
      .execute();
  }

  /** Whether this name signed in from this address since `since`. */
  async familiar(key: { username: string; source: string }, since: Date): Promise<boolean> {
    const row = await this.x
      .selectFrom('sign_in_throttle')
      .select('last_success_at')
      .where('username', '=', key.username)
      .where('source', '=', key.source)
      .executeTakeFirst();
    return row?.last_success_at != null && row.last_success_at >= since.toISOString();
  }

  /** When the delay in force on this counter ends, if one is. */
  async throttledUntil(key: { username: string; source: string }, now = new Date()): Promise<string | null> {
    const row = await this.x
      .selectFrom('sign_in_throttle')
      .select('throttled_until')
      .where('username', '=', key.username)
      .where('source', '=', key.source)
      .executeTakeFirst();
    return row?.throttled_until != null && row.throttled_until > now.toISOString() ? row.throttled_until : null;
  }

  /** An administrator lifts every throttle of a user: the account's and those of its name from each address. */
  async forget(user: { id: string; username: string }): Promise<void> {
    await inTransaction(this.x, async (tx) => {
      await tx.updateTable('users').set({ failed_logins: 0, locked_until: null }).where('id', '=', user.id).execute();
      await tx.updateTable('sign_in_throttle').set({ failures: 0, throttled_until: null }).where('username', '=', user.username).execute();
    });
  }
}

/**
 * The delay a count starts, as SQL: none below the threshold, then the first delay,
 * doubling with each further failure, at most the longest. The few steps are spelled out
 * so the one statement works the same on both databases.
 */
function delayAfter(count: RawBuilder<number>, rule: ThrottleRule, now: Date): RawBuilder<string | null> {
  const until = (ms: number) => new Date(now.getTime() + ms).toISOString();
  const steps: RawBuilder<unknown>[] = [];
  for (let n = 0, ms = Math.min(rule.firstDelayMs, rule.maxDelayMs); ms < rule.maxDelayMs; n++, ms *= 2) {
    steps.push(sql`when ${count} = ${rule.threshold + n} then ${until(ms)}`);
  }
  return sql<string | null>`case when ${count} < ${rule.threshold} then null ${sql.join(steps, sql` `)} else ${until(rule.maxDelayMs)} end`;
}
