import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { GatehouseError } from '@gatehouse/core';
import type { Db } from './connect.js';
import { isUniqueViolation } from './errors.js';

/**
 * Envelope encryption for every secret field. A random data key (AES-256) encrypts the
 * fields; the master key (kept outside the database) wraps the data key. Each field's
 * ciphertext is bound to its table, record id and field name as associated data, so a
 * ciphertext copied into another row or field does not decrypt.
 */
export interface Vault {
  encrypt(scope: FieldScope, plaintext: string): string;
  decrypt(scope: FieldScope, ciphertext: string): string;
  /** The fingerprint of the master key in use (not secret: a hash). */
  readonly masterKeyId: string;
}

export interface FieldScope {
  table: string;
  id: string;
  field: string;
}

const FORMAT = 'gh1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A short, stable, non-reversible name for a master key, stored beside what it wraps. */
export function masterKeyIdOf(masterKey: Buffer): string {
  return createHash('sha256').update('gatehouse master key id\0').update(masterKey).digest('hex').slice(0, 16);
}

function seal(key: Buffer, plaintext: Buffer, aad: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

function open(key: Buffer, sealed: string, aad: string): Buffer {
  const raw = Buffer.from(sealed, 'base64url');
  if (raw.length < IV_BYTES + TAG_BYTES) throw new GatehouseError('VAULT_UNAVAILABLE', 'ciphertext too short');
  const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
}

const wrapAad = (dataKeyId: string) => `gatehouse data key ${dataKeyId}`;
const fieldAad = (s: FieldScope) => `${s.table}.${s.field}:${s.id}`;

export function assertMasterKey(masterKey: Buffer): void {
  if (masterKey.length !== 32) {
    throw new GatehouseError('VAULT_UNAVAILABLE', 'The master key must be 32 bytes (64 hex characters or 44 base64 characters).');
  }
}

/**
 * Opens the vault of this database with the master key, creating the first data key on a
 * new database. Fails with a clear message when the key is not the one the data was
 * sealed with.
 */
export async function openVault(db: Db, masterKey: Buffer): Promise<Vault> {
  assertMasterKey(masterKey);
  const masterKeyId = masterKeyIdOf(masterKey);
  let rows = await db.kysely.selectFrom('vault_keys').selectAll().execute();
  if (rows.length === 0) {
    // The first data key has a fixed id, so two processes opening a new database at once
    // cannot both create one: the second insert fails and it reads the winner's key.
    const id = 'data-key-1';
    try {
      await db.kysely
        .insertInto('vault_keys')
        .values({
          id,
          wrapped_key: seal(masterKey, randomBytes(32), wrapAad(id)),
          master_key_id: masterKeyId,
          active: 1,
          created_at: new Date().toISOString(),
        })
        .execute();
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
    }
    rows = await db.kysely.selectFrom('vault_keys').selectAll().execute();
  }
  const dataKeys = new Map<string, Buffer>();
  for (const row of rows) {
    if (row.master_key_id !== masterKeyId) {
      throw new GatehouseError(
        'VAULT_UNAVAILABLE',
        `The master key given (id ${masterKeyId}) is not the one this database's secrets are sealed with (id ${row.master_key_id}). ` +
          'Start with the right GATEHOUSE_MASTER_KEY or key file; if you just rotated it, use the new key.',
      );
    }
    try {
      dataKeys.set(row.id, open(masterKey, row.wrapped_key, wrapAad(row.id)));
    } catch {
      throw new GatehouseError(
        'VAULT_UNAVAILABLE',
        `Data key ${row.id} does not unwrap with the master key: the vault table was altered or the key is wrong.`,
      );
    }
  }
  const active = rows.find((r) => r.active === 1) ?? rows[0];
  if (!active) throw new GatehouseError('VAULT_UNAVAILABLE', 'The vault has no data key.');
  const activeKey = dataKeys.get(active.id) as Buffer;

  return {
    masterKeyId,
    encrypt(scope, plaintext) {
      return `${FORMAT}.${active.id}.${seal(activeKey, Buffer.from(plaintext, 'utf8'), fieldAad(scope))}`;
    },
    decrypt(scope, ciphertext) {
      const [format, keyId, body] = ciphertext.split('.');
      const key = keyId === undefined ? undefined : dataKeys.get(keyId);
      if (format !== FORMAT || !key || body === undefined) {
        throw new GatehouseError(
          'VAULT_UNAVAILABLE',
          `The stored ${scope.table}.${scope.field} of ${scope.id} is not a Gatehouse ciphertext.`,
        );
      }
      try {
        return open(key, body, fieldAad(scope)).toString('utf8');
      } catch {
        throw new GatehouseError(
          'VAULT_UNAVAILABLE',
          `The stored ${scope.table}.${scope.field} of ${scope.id} does not decrypt: it was altered or belongs to another record.`,
        );
      }
    },
  };
}

/**
 * Re-wraps every data key under a new master key in one transaction. The field
 * ciphertexts do not change, so a running server keeps working; after a restart it needs
 * the new key.
 */
export async function rewrapDataKeys(db: Db, oldKey: Buffer, newKey: Buffer): Promise<{ dataKeys: number; masterKeyId: string }> {
  assertMasterKey(oldKey);
  assertMasterKey(newKey);
  const oldId = masterKeyIdOf(oldKey);
  const newId = masterKeyIdOf(newKey);
  return db.kysely.transaction().execute(async (trx) => {
    const rows = await trx.selectFrom('vault_keys').selectAll().execute();
    for (const row of rows) {
      if (row.master_key_id === newId) continue;
      if (row.master_key_id !== oldId) {
        throw new GatehouseError('VAULT_UNAVAILABLE', `Data key ${row.id} is not sealed with the current master key; nothing was changed.`);
      }
      const dataKey = open(oldKey, row.wrapped_key, wrapAad(row.id));
      await trx
        .updateTable('vault_keys')
        .set({ wrapped_key: seal(newKey, dataKey, wrapAad(row.id)), master_key_id: newId })
        .where('id', '=', row.id)
        .execute();
    }
    return { dataKeys: rows.length, masterKeyId: newId };
  });
}
