import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { GatehouseError } from '@gatehouse/core';
import { appendAuditEvent, rewrapDataKeys, type Db } from '@gatehouse/db';
import { defaultMasterKeyFile, formatMasterKey, loadMasterKey, parseMasterKey, pendingMasterKeyFile } from '@gatehouse/server';
import { count } from './output.js';

/**
 * Rotates the master key. With the generated key file in the data directory, the new key
 * is written beside it first (`master.key.next`), the data keys are re-wrapped in one
 * transaction, then the file is switched: a crash at any point leaves a key that opens
 * the vault (the server settles a leftover `.next` at start). With a key from the
 * environment or a mounted file, the new key comes from --new-key-file and the operator
 * updates the secret; the key itself is never printed.
 */
export async function rotateMasterKey(db: Db, dataDir: string, newKeyFile: string | undefined): Promise<string> {
  const current = loadMasterKey({
    masterKey: process.env.GATEHOUSE_MASTER_KEY,
    masterKeyFile: process.env.GATEHOUSE_MASTER_KEY_FILE,
    dataDir,
    create: false,
  });
  if (current.origin !== 'data-dir' && newKeyFile === undefined) {
    throw new GatehouseError(
      'BAD_REQUEST',
      `The master key comes from ${current.origin === 'environment' ? 'GATEHOUSE_MASTER_KEY' : current.file}. Generate a new one (openssl rand -hex 32 > new.key), pass --new-key-file new.key, then update that secret before the next restart.`,
    );
  }
  const newKey = newKeyFile ? parseMasterKey(readFileSync(newKeyFile, 'utf8'), newKeyFile) : randomBytes(32);
  if (newKey.equals(current.key)) throw new GatehouseError('BAD_REQUEST', 'The new master key is the same as the current one.');

  if (current.origin === 'data-dir') {
    const file = defaultMasterKeyFile(dataDir);
    const next = pendingMasterKeyFile(file);
    writeFileSync(next, `${formatMasterKey(newKey)}\n`, { mode: 0o600 });
    try {
      const result = await rewrapDataKeys(db, current.key, newKey);
      renameSync(next, file);
      await appendAuditEvent(db, {
        actorName: 'cli',
        action: 'vault.rotate_master_key',
        outcome: 'success',
        details: { dataKeys: result.dataKeys, masterKeyId: result.masterKeyId },
      });
      return `Master key rotated: ${count(result.dataKeys, 'data key')} re-wrapped; new key id ${result.masterKeyId} in ${file}. Restart the server to use it.`;
    } catch (error) {
      if (existsSync(next)) rmSync(next);
      throw error;
    }
  }
  const result = await rewrapDataKeys(db, current.key, newKey);
  await appendAuditEvent(db, {
    actorName: 'cli',
    action: 'vault.rotate_master_key',
    outcome: 'success',
    details: { dataKeys: result.dataKeys, masterKeyId: result.masterKeyId },
  });
  return `Master key rotated: ${count(result.dataKeys, 'data key')} re-wrapped; new key id ${result.masterKeyId}. Set GATEHOUSE_MASTER_KEY (or the key file) to the new key before restarting the server.`;
}
