import { sql } from 'kysely';
import type { Db, Tx } from './connect.js';

/** One request counted: the hits its window holds with it, and when that window ends. */
export interface RateLimitHit {
  hits: number;
  windowEndsAt: Date;
}

/**
 * Requests counted against routes' limits in the database, so that every replica on one
 * PostgreSQL counts into the same window: N replicas allow the limit once, not N times.
 * A window starts with the first request a caller sends after the last one ended (as the
 * rate-limit plugin's in-memory store counts).
 */
export class RateLimits {
  private readonly x: Tx;

  constructor(db: Db) {
    this.x = db.kysely;
  }

  /**
   * Counts one request of `source` to `route` with one statement (an upsert that adds one,
   * or starts a new window when the last one ended), so requests arriving at the same time
   * on different replicas each get their own count.
   */
  async hit(route: string, source: string, windowMs: number, now = new Date()): Promise<RateLimitHit> {
    const at = now.toISOString();
    const windowEnd = new Date(now.getTime() + windowMs).toISOString();
    const ended = sql<boolean>`rate_limits.window_ends_at <= ${at}`;
    const row = await this.x
      .insertInto('rate_limits')
      .values({ route, source, hits: 1, window_ends_at: windowEnd })
      .onConflict((oc) =>
        oc.columns(['route', 'source']).doUpdateSet({
          hits: sql<number>`case when ${ended} then 1 else rate_limits.hits + 1 end`,
          window_ends_at: sql<string>`case when ${ended} then ${windowEnd} else rate_limits.window_ends_at end`,
        }),
      )
      .returning(['hits', 'window_ends_at'])
      .executeTakeFirstOrThrow();
    return { hits: Number(row.hits), windowEndsAt: new Date(row.window_ends_at) };
  }

  /** Deletes the counts whose window has ended; returns how many. */
  async prune(now = new Date()): Promise<number> {
    const result = await this.x.deleteFrom('rate_limits').where('window_ends_at', '<=', now.toISOString()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
