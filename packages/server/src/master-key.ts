import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GatehouseError } from '@gatehouse/core';

/** Where the master key came from: an environment variable, a mounted file or the data directory. */
export interface MasterKeySource {
  key: Buffer;
  origin: 'environment' | 'file' | 'data-dir';
  /** The file it was read from (for `file` and `data-dir`). */
  file?: string;
}

export function defaultMasterKeyFile(dataDir: string): string {
  return path.join(dataDir, 'master.key');
}

/** Parses 64 hex characters or 44 base64 characters into 32 bytes; the error never echoes the input. */
export function parseMasterKey(text: string, where: string): Buffer {
  const s = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(s)) key = Buffer.from(s, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(s)) key = Buffer.from(s, 'base64');
  if (!key || key.length !== 32) {
    throw new GatehouseError(
      'VAULT_UNAVAILABLE',
      `The master key in ${where} is not 32 bytes written as 64 hex or 44 base64 characters. Generate one with: openssl rand -hex 32`,
    );
  }
  return key;
}

export function formatMasterKey(key: Buffer): string {
  return key.toString('hex');
}

/**
 * Finds the master key: GATEHOUSE_MASTER_KEY, then a key file (a mounted secret), then
 * `<data-dir>/master.key`, which is generated (mode 0600) the first time.
 */
export function loadMasterKey(opts: {
  masterKey?: string | undefined;
  masterKeyFile?: string | undefined;
  dataDir: string;
  create: boolean;
}): MasterKeySource {
  if (opts.masterKey !== undefined) return { key: parseMasterKey(opts.masterKey, 'GATEHOUSE_MASTER_KEY'), origin: 'environment' };
  if (opts.masterKeyFile !== undefined) return { key: readKeyFile(opts.masterKeyFile), origin: 'file', file: opts.masterKeyFile };
  const file = defaultMasterKeyFile(opts.dataDir);
  recoverInterruptedRotation(file);
  if (existsSync(file)) return { key: readKeyFile(file), origin: 'data-dir', file };
  if (!opts.create) {
    throw new GatehouseError(
      'VAULT_UNAVAILABLE',
      `No master key: ${file} does not exist and GATEHOUSE_MASTER_KEY is not set. The database's secrets are sealed with one: restore ${file} from your backup, or set GATEHOUSE_MASTER_KEY or GATEHOUSE_MASTER_KEY_FILE.`,
    );
  }
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  writeFileSync(file, `${formatMasterKey(key)}\n`, { mode: 0o600, flag: 'wx' });
  return { key, origin: 'data-dir', file };
}

function readKeyFile(file: string): Buffer {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new GatehouseError(
      'VAULT_UNAVAILABLE',
      `Cannot read the master key file ${file} (${(error as NodeJS.ErrnoException).code ?? 'error'}). Check the path and that this user may read it.`,
    );
  }
  return parseMasterKey(text, file);
}

/** A rotation writes `master.key.next` before it commits; the server settles it at start. */
export function pendingMasterKeyFile(file: string): string {
  return `${file}.next`;
}

function recoverInterruptedRotation(file: string): void {
  const next = pendingMasterKeyFile(file);
  if (existsSync(next) && !existsSync(file)) renameSync(next, file);
}
