import type { Db } from './connect.js';
import { isUniqueViolation } from './errors.js';

/**
 * A named lease: at most one holder at a time, across every process sharing the
 * database. A holder that dies stops renewing, and the lease lapses at `expires_at`.
 */
export class Leases {
  constructor(readonly db: Db) {}

  /** Takes the lease for `ttlMs` if it is free or lapsed; true when taken. */
  async acquire(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = new Date();
    const expires_at = new Date(now.getTime() + ttlMs).toISOString();
    const taken = await this.db.kysely
      .updateTable('leases')
      .set({ holder, expires_at })
      .where('name', '=', name)
      .where('expires_at', '<=', now.toISOString())
      .executeTakeFirst();
    if (Number(taken.numUpdatedRows) > 0) return true;
    try {
      await this.db.kysely.insertInto('leases').values({ name, holder, expires_at }).execute();
      return true;
    } catch (error) {
      if (isUniqueViolation(error)) return false;
      throw error;
    }
  }

  /** Extends a lease this holder has; false when it lapsed and someone else took it. */
  async renew(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const r = await this.db.kysely
      .updateTable('leases')
      .set({ expires_at: new Date(Date.now() + ttlMs).toISOString() })
      .where('name', '=', name)
      .where('holder', '=', holder)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /** Who holds the lease now (lapsed or not), if anyone. */
  async holderOf(name: string): Promise<string | undefined> {
    const row = await this.db.kysely.selectFrom('leases').select('holder').where('name', '=', name).executeTakeFirst();
    return row?.holder;
  }

  /** Takes the lease from `from`, a holder known to be gone; false when someone else has it by now. */
  async takeOver(name: string, from: string, holder: string, ttlMs: number): Promise<boolean> {
    const r = await this.db.kysely
      .updateTable('leases')
      .set({ holder, expires_at: new Date(Date.now() + ttlMs).toISOString() })
      .where('name', '=', name)
      .where('holder', '=', from)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async release(name: string, holder: string): Promise<void> {
    await this.db.kysely.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute();
  }
}
