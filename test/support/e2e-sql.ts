import path from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import type { E2eDatabase } from './server.js';

/**
 * Runs one statement on an e2e server's database behind Gatehouse's back (as the clock or
 * an intruder with database access would change it), on either dialect: `$1`, `$2`… are
 * the parameters, in order. Resolves to the number of rows it changed.
 */
export async function runOnServerDatabase(
  dialect: 'sqlite' | 'postgres',
  where: { dataDir: string; database: E2eDatabase },
  statement: string,
  params: unknown[],
): Promise<number> {
  if (dialect === 'sqlite') {
    const db = new SQLite(path.join(where.dataDir, 'gatehouse.sqlite'));
    try {
      return db.prepare(statement.replace(/\$\d+/g, '?')).run(...params).changes;
    } finally {
      db.close();
    }
  }
  return (await queryPostgres(where.database, statement, params)).rowCount ?? 0;
}

/** One statement on an e2e server's PostgreSQL database, through a client of its own, closed after. */
export async function queryPostgres<R extends pg.QueryResultRow>(
  database: E2eDatabase,
  statement: string,
  params: unknown[],
): Promise<pg.QueryResult<R>> {
  const client = new pg.Client({ connectionString: database.env.DATABASE_URL });
  await client.connect();
  try {
    return await client.query<R>(statement, params);
  } finally {
    await client.end();
  }
}
