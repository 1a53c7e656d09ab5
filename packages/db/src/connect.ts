import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import { GatehouseError } from '@gatehouse/core';
import { migrationProvider } from './migrations.js';
import type { Database } from './schema.js';

export type DialectName = 'sqlite' | 'postgres';

/** An open database: the Kysely handle plus which of the two engines it is. */
export interface Db {
  readonly kysely: Kysely<Database>;
  readonly dialect: DialectName;
  /** Where it lives, without credentials: a file path or `postgres://host:port/db`. */
  readonly location: string;
  close(): Promise<void>;
}

export type Tx = Transaction<Database> | Kysely<Database>;

export interface OpenDatabaseOptions {
  /** `postgres://…` for PostgreSQL; when absent the embedded database in `dataDir` is used. */
  databaseUrl?: string | undefined;
  dataDir: string;
  /** Run pending migrations (default true). */
  migrate?: boolean;
}

/** Opens (and by default migrates) the embedded SQLite database or PostgreSQL. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Db> {
  const db = options.databaseUrl ? openPostgres(options.databaseUrl) : openSqlite(options.dataDir);
  try {
    await db.kysely.selectNoFrom(sql<number>`1`.as('one')).execute();
    if (options.migrate !== false) await migrateToLatest(db);
  } catch (error) {
    await db.close().catch(() => undefined);
    if (error instanceof GatehouseError) throw error;
    throw new GatehouseError(
      'NOT_READY',
      `Could not open the database at ${db.location}: ${(error as Error).message}. ` +
        (db.dialect === 'postgres'
          ? 'Check DATABASE_URL and that PostgreSQL is running and reachable.'
          : 'Check that the data directory is writable.'),
    );
  }
  return db;
}

function openSqlite(dataDir: string): Db {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, 'gatehouse.sqlite');
  let database: SQLite.Database;
  try {
    database = new SQLite(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_DLOPEN_FAILED') throw error;
    // The native driver was built for another Node.js version (node_modules copied across).
    throw new GatehouseError(
      'NOT_READY',
      `The embedded database driver (better-sqlite3) was built for another Node.js version than ${process.version}. Run "npm rebuild better-sqlite3", or use PostgreSQL with DATABASE_URL.`,
    );
  }
  // The file holds only sealed secrets, but its metadata (users, inventory, audit) is private too.
  for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
  database.pragma('journal_mode = WAL');
  database.pragma('foreign_keys = ON');
  database.pragma('busy_timeout = 5000');
  database.pragma('synchronous = NORMAL');
  const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  return { kysely, dialect: 'sqlite', location: file, close: () => kysely.destroy() };
}

function openPostgres(url: string): Db {
  const parsed = new URL(url);
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new GatehouseError('CONFIG_INVALID', 'DATABASE_URL must start with postgres:// or postgresql://.');
  }
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // A pool error (a server restart, a dropped idle connection) must not crash the process.
  pool.on('error', () => undefined);
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const location = `postgres://${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
  return { kysely, dialect: 'postgres', location, close: () => kysely.destroy() };
}

export async function migrateToLatest(db: Db): Promise<void> {
  const migrator = new Migrator({
    db: db.kysely,
    provider: migrationProvider(db.dialect),
    migrationTableName: 'gatehouse_migrations',
    migrationLockTableName: 'gatehouse_migrations_lock',
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new GatehouseError(
      'NOT_READY',
      `Database migration ${failed} failed: ${(error as Error).message}. Nothing was changed by the failed step; fix the cause and start again.`,
    );
  }
}
