import { existsSync } from 'node:fs';
import path from 'node:path';
import { GatehouseError } from '@gatehouse/core/errors';
import type { Command } from 'commander';

/** `--data-dir` and `--database-url` of a command that opens the database itself, as the server would. */
export function withDatabase(cmd: Command): Command {
  return cmd
    .option('--data-dir <dir>', "the server's data directory (env GATEHOUSE_DATA_DIR; default ./data)")
    .option('--database-url <url>', 'the PostgreSQL URL, when the server uses PostgreSQL (env DATABASE_URL)');
}

/** Offline commands open the database directly: the same sources as the server. */
export async function openOffline(opts: { dataDir?: string; databaseUrl?: string }) {
  const { openDatabase } = await import('@gatehouse/db');
  const dataDir = path.resolve(opts.dataDir ?? process.env.GATEHOUSE_DATA_DIR ?? './data');
  const databaseUrl = opts.databaseUrl ?? process.env.DATABASE_URL;
  if (!databaseUrl && !existsSync(path.join(dataDir, 'gatehouse.sqlite'))) {
    throw new GatehouseError('NOT_FOUND', `No database in ${dataDir}. Pass --data-dir (or DATABASE_URL for PostgreSQL).`);
  }
  return { db: await openDatabase({ dataDir, databaseUrl }), dataDir };
}
