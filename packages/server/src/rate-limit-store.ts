import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import { GatehouseError } from '@gatehouse/core';
import type { RateLimits } from '@gatehouse/db';
import { errorCodeOf } from './database-health.js';
import type { Logger } from './logger.js';

/** How often ended windows are deleted, at most (each replica; any of them may). */
const PRUNE_EVERY_MS = 60_000;

/** A request this replica could not count against its route's limit: refused, never let through uncounted. */
export class RateLimitUnavailableError extends GatehouseError {
  constructor(problem: string) {
    super(
      'NOT_READY',
      `This server could not count the request against the route's rate limit because its database does not answer (${problem}), so it refuses the request rather than let it through unlimited. Try again in a moment: another server behind the same address may take it.`,
    );
    this.name = 'RateLimitUnavailableError';
  }
}

/**
 * @fastify/rate-limit's `store` option, counting in the database (RateLimits): replicas on
 * one PostgreSQL share each route's limit. Each route gets a child store named after its
 * method and URL pattern. When the count cannot be written the request fails with
 * RateLimitUnavailableError (the plugin's skipOnError stays off), so a replica that lost
 * its database does not answer limited routes without a limit.
 */
export function databaseRateLimitStore(limits: RateLimits, logger: Logger): FastifyRateLimitStoreCtor {
  let prunedAt = Date.now();
  const pruneNow = (now: number) => {
    if (now - prunedAt < PRUNE_EVERY_MS) return;
    prunedAt = now;
    limits.prune(new Date(now)).catch((error: unknown) => {
      logger.warn({ code: errorCodeOf(error) }, 'could not delete ended rate-limit windows; the next prune tries again');
    });
  };

  class DatabaseRateLimitStore implements FastifyRateLimitStore {
    constructor(
      options: { timeWindow?: unknown },
      private readonly route = '',
      private readonly timeWindow = typeof options.timeWindow === 'number' ? options.timeWindow : 60_000,
    ) {}

    /** The plugin passes the route's window (ms) and limit; the limit is compared by the plugin. */
    incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow?: number): void {
      const now = new Date();
      limits.hit(this.route, key, timeWindow ?? this.timeWindow, now).then(
        ({ hits, windowEndsAt }) => {
          callback(null, { current: hits, ttl: Math.max(0, windowEndsAt.getTime() - now.getTime()) });
          pruneNow(now.getTime());
        },
        (error: unknown) => {
          logger.warn(
            { code: errorCodeOf(error), route: this.route },
            'a rate-limited request was refused: its count could not be written',
          );
          callback(new RateLimitUnavailableError(errorCodeOf(error)));
        },
      );
    }

    child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
      // The plugin passes the route's merged limit settings plus `routeInfo` (the route),
      // not the RouteOptions its typings declare.
      const options = routeOptions as unknown as { timeWindow?: unknown; routeInfo?: { method?: unknown; url?: unknown } };
      const { method, url } = options.routeInfo ?? {};
      const route = typeof url === 'string' ? `${[method].flat().map(String).join(',')} ${url}` : '';
      return new DatabaseRateLimitStore(options, route);
    }
  }
  return DatabaseRateLimitStore;
}
