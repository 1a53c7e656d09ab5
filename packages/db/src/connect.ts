import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import { GatehouseError } from '@gatehouse/core';
import { migrationProvider } from './migrations.js';
import { cachedStatements } from './statement-cache.js';
import type { Database } from './schema.js';
import type { CheckpointerReply, CheckpointerRequest } from './wal-checkpointer.js';

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

/**
 * Runs `fn` in a transaction: `x`'s own when it already is one (a repository bound to a
 * caller's transaction), else a new one.
 */
export function inTransaction<T>(x: Tx, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return x.isTransaction ? fn(x as Transaction<Database>) : x.transaction().execute(fn);
}

export interface OpenDatabaseOptions {
  /** `postgres://…` for PostgreSQL; when absent the embedded database in `dataDir` is used. */
  databaseUrl?: string | undefined;
  dataDir: string;
  /** Run pending migrations (default true). */
  migrate?: boolean;
  /** SQLite: checkpoint the WAL (on a worker thread) once its file is larger than this. */
  walCheckpointBytes?: number;
  /** SQLite: told of each checkpoint and when the checkpoint thread starts and stops (tests). */
  onWalCheckpointer?: (event: WalCheckpointerEvent) => void;
}

export type WalCheckpointerEvent =
  | { kind: 'started' }
  | ({ kind: 'checkpoint' } & CheckpointerReply)
  | { kind: 'stopped'; exitCode: number }
  | { kind: 'failed'; message: string };

/** The WAL's size that starts a checkpoint: a few MiB, as SQLite's automatic one (1,000 pages). */
const WAL_CHECKPOINT_BYTES = 4 * 1024 * 1024;
/** How often the WAL's size is looked at. */
const WAL_CHECK_MS = 1000;

/** Opens (and by default migrates) the embedded SQLite database or PostgreSQL. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Db> {
  const db = options.databaseUrl ? openPostgres(options.databaseUrl) : openSqlite(options);
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

function openSqlite({ dataDir, walCheckpointBytes = WAL_CHECKPOINT_BYTES, onWalCheckpointer }: OpenDatabaseOptions): Db {
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
  // Checkpoints run on a thread of their own (walCheckpointer); a WAL file emptied by one is
  // cut back to this size by the next commit, so it does not stay at its largest.
  database.pragma('wal_autocheckpoint = 0');
  database.pragma(`journal_size_limit = ${walCheckpointBytes}`);
  const checkpointer = walCheckpointer(database, file, walCheckpointBytes, onWalCheckpointer);
  const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: cachedStatements(database) }) });
  const close = async () => {
    await checkpointer.close();
    await kysely.destroy();
  };
  return { kysely, dialect: 'sqlite', location: file, close };
}

/**
 * Keeps the WAL from growing without bound while automatic checkpoints are off. Every
 * second the main thread looks at the WAL file's size (a stat); once it is larger than
 * `limit` and has changed since the last complete checkpoint, a worker thread
 * (wal-checkpointer.ts, with its own connection) checkpoints it. The thread starts at the
 * first checkpoint, so a database that stays small (most tests, CLI commands) never has
 * one. If the thread cannot run, the main connection goes back to SQLite's automatic
 * checkpoint rather than let the WAL grow.
 */
function walCheckpointer(
  database: SQLite.Database,
  file: string,
  limit: number,
  notify: ((event: WalCheckpointerEvent) => void) | undefined,
): { close(): Promise<void> } {
  let worker: Worker | undefined;
  let exited: Promise<void> = Promise.resolve();
  let pending = false;
  let failed = false;
  /** The WAL file's size and time at the last checkpoint that copied every frame. */
  let cleanAt = '';
  const stampOf = (): { size: number; stamp: string } | undefined => {
    try {
      const s = statSync(`${file}-wal`);
      return { size: s.size, stamp: `${s.size}:${s.mtimeMs}` };
    } catch {
      return undefined; // no WAL file (yet)
    }
  };
  const fail = (message: string) => {
    if (failed) return;
    failed = true;
    clearInterval(timer);
    if (database.open) database.pragma('wal_autocheckpoint = 1000');
    notify?.({ kind: 'failed', message });
  };
  const start = (): Worker => {
    const thread = new Worker(checkpointerUrl(), { workerData: { file } });
    thread.unref(); // a database left open must not keep the process alive
    thread.on('message', (reply: CheckpointerReply) => {
      pending = false;
      if (reply.log === reply.checkpointed) cleanAt = stampOf()?.stamp ?? '';
      notify?.({ kind: 'checkpoint', ...reply });
    });
    thread.on('error', (error) => fail(`The WAL checkpoint thread failed: ${error.message}`));
    exited = new Promise((resolve) =>
      thread.once('exit', (exitCode) => {
        notify?.({ kind: 'stopped', exitCode });
        resolve();
      }),
    );
    notify?.({ kind: 'started' });
    return thread;
  };
  const check = () => {
    if (pending || failed) return;
    const wal = stampOf();
    if (!wal || wal.size <= limit || wal.stamp === cleanAt) return;
    worker ??= start();
    pending = true;
    worker.postMessage('checkpoint' satisfies CheckpointerRequest);
  };
  const timer = setInterval(check, WAL_CHECK_MS);
  timer.unref();
  return {
    async close() {
      clearInterval(timer);
      failed = true;
      worker?.postMessage('close' satisfies CheckpointerRequest);
      await exited;
    },
  };
}

/** The compiled thread beside this module; from the TypeScript sources (unit tests), the built one. */
function checkpointerUrl(): URL {
  const sibling = new URL('./wal-checkpointer.js', import.meta.url);
  return existsSync(sibling) ? sibling : new URL('../dist/wal-checkpointer.js', import.meta.url);
}

function openPostgres(url: string): Db {
  const parsed = new URL(url);
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new GatehouseError('CONFIG_INVALID', 'DATABASE_URL must start with postgres:// or postgresql://.');
  }
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // A pool error (a server restart, a dropped idle connection) must not crash the process.
  pool.on('error', () => undefined);
  // Nor a connection lost while a client is checked out between two statements (pg-pool
  // listens only to idle clients): the next statement fails, and the pool drops the client.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  const location = `postgres://${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
  return { kysely, dialect: 'postgres', location, close: () => kysely.destroy() };
}

const migratorOf = (db: Db) =>
  new Migrator({
    db: db.kysely,
    provider: migrationProvider(db.dialect),
    migrationTableName: 'gatehouse_migrations',
    migrationLockTableName: 'gatehouse_migrations_lock',
  });

/** How many of this version's migrations the database has, of how many (fewer: another process is migrating it, or will). */
export async function migrationProgress(db: Db): Promise<{ applied: number; known: number }> {
  const migrations = await migratorOf(db).getMigrations();
  return { applied: migrations.filter((m) => m.executedAt !== undefined).length, known: migrations.length };
}

export async function migrateToLatest(db: Db): Promise<void> {
  const { error, results } = await migratorOf(db).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new GatehouseError(
      'NOT_READY',
      `Database migration ${failed} failed: ${(error as Error).message}. Nothing was changed by the failed step; fix the cause and start again.`,
    );
  }
}
