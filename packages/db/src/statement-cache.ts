import type SQLite from 'better-sqlite3';
import type { SqliteDatabase } from 'kysely';

/** How many prepared statements the embedded database keeps (most recently used first). */
export const STATEMENT_CACHE_SIZE = 256;

/**
 * The embedded database as Kysely's SQLite dialect sees it, with its prepared statements
 * kept by SQL text: Kysely prepares every query it runs again, and preparing was the
 * largest single cost of a gateway session's set-up (11 % of the server's CPU, issue 23).
 * A statement is reused only while it is not busy (an `iterate` under way); past `size`
 * the least recently used is dropped. SQLite re-prepares a kept statement by itself after
 * a schema change.
 */
export function cachedStatements(database: SQLite.Database, size = STATEMENT_CACHE_SIZE): SqliteDatabase {
  const kept = new Map<string, SQLite.Statement>();
  return {
    prepare(sql: string) {
      const found = kept.get(sql);
      if (found && !found.busy) {
        // Most recently used last: a Map iterates in insertion order.
        kept.delete(sql);
        kept.set(sql, found);
        return found;
      }
      const statement = database.prepare(sql);
      if (found) return statement; // the kept one is iterating: this one serves once
      kept.set(sql, statement);
      if (kept.size > size) kept.delete(kept.keys().next().value as string);
      return statement;
    },
    close() {
      kept.clear();
      database.close();
    },
  };
}
