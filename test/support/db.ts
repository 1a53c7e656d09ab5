import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openDatabase, type Db, type DialectName } from '@gatehouse/db';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type MigrationProvider } from 'kysely';
import pg from 'pg';

/**
 * Both databases every data-layer and API test runs against. GATEHOUSE_TEST_DIALECTS
 * narrows it (e.g. `postgres` on a Node.js whose native SQLite driver is not built).
 */
export const dialects: readonly DialectName[] = (process.env.GATEHOUSE_TEST_DIALECTS ?? 'sqlite,postgres')
  .split(',')
  .map((d) => d.trim())
  .filter((d): d is DialectName => d === 'sqlite' || d === 'postgres');

/** PostgreSQL as these machines run it: 127.0.0.1:5432, trust auth. Override with TEST_POSTGRES_URL. */
export const postgresAdminUrl = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  db: Db;
  dialect: DialectName;
  dataDir: string;
  /** The URL of the PostgreSQL database (undefined for SQLite). */
  databaseUrl: string | undefined;
  cleanup(): Promise<void>;
}

/** A fresh, migrated database in a temporary directory (SQLite) or a new PostgreSQL database. */
export async function createTestDatabase(dialect: DialectName): Promise<TestDatabase> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-test-'));
  let databaseUrl: string | undefined;
  let name: string | undefined;
  if (dialect === 'postgres') {
    name = `gatehouse_test_${randomBytes(6).toString('hex')}`;
    await withAdmin((c) => c.query(`create database ${name}`));
    const url = new URL(postgresAdminUrl);
    url.pathname = `/${name}`;
    databaseUrl = url.toString();
  }
  const db = await openDatabase({ dataDir, databaseUrl });
  return {
    db,
    dialect,
    dataDir,
    databaseUrl,
    async cleanup() {
      await db.close().catch(() => undefined);
      if (name) await withAdmin((c) => c.query(`drop database if exists ${name} with (force)`));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function createEmptyPostgresDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `gatehouse_test_${randomBytes(6).toString('hex')}`;
  await withAdmin((c) => c.query(`create database ${name}`));
  const url = new URL(postgresAdminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => withAdmin((c) => c.query(`drop database if exists ${name} with (force)`)).then(() => undefined),
  };
}

/**
 * An empty database of `dialect` and a migrator over `provider`, for a test of one migration:
 * migrate to the version before it, write rows as they were, migrate to the latest.
 */
export async function migrationTestDatabase(
  dialect: DialectName,
  provider: MigrationProvider,
): Promise<{ kysely: Kysely<unknown>; migrator: Migrator; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gatehouse-migrate-'));
  const pgDb = dialect === 'postgres' ? await createEmptyPostgresDatabase() : undefined;
  const pool = pgDb ? new pg.Pool({ connectionString: pgDb.url, max: 2 }) : undefined;
  // pg-pool resolves end() before its clients have closed; the forced drop that follows then
  // ends them, and the pool re-emits that as an 'error' event, unhandled without a listener.
  pool?.on('error', () => undefined);
  const kysely = new Kysely<unknown>({
    dialect: pool ? new PostgresDialect({ pool }) : new SqliteDialect({ database: new SQLite(path.join(dir, 'db.sqlite')) }),
  });
  return {
    kysely,
    migrator: new Migrator({ db: kysely, provider }),
    cleanup: async () => {
      await kysely.destroy();
      await pgDb?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: postgresAdminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
